"""libweightmap_c exports the C API and nothing else: every function weightmap.h declares,
no C++ symbol (no weightmap::, fmt or simdjson internals), and the package binds only what
the library exports."""

import os
import re
import subprocess
import unittest

from weightmap import _capi

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "include", "weightmap",
                      "weightmap.h")


def exported_functions(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                         capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[1:2] == ["T"]}


def declared_functions():
    with open(HEADER) as header:
        text = header.read()
    return set(re.findall(r"WEIGHTMAP_C_API\s+[^;(]*?\b(weightmap_\w+)\s*\(", text))


class ExportsTest(unittest.TestCase):
    def setUp(self):
        self.exported = exported_functions(os.environ["WEIGHTMAP_LIBRARY"])

    def test_only_the_c_api_is_exported(self):
        others = sorted(name for name in self.exported if not name.startswith("weightmap_"))
        self.assertEqual(others, [])

    def test_every_declared_function_is_exported(self):
        declared = declared_functions()
        self.assertGreater(len(declared), 40)
        self.assertEqual(sorted(declared - self.exported), [])
        self.assertEqual(sorted(self.exported - declared), [])

    def test_the_package_binds_exported_functions_only(self):
        self.assertEqual(sorted(set(_capi._SIGNATURES) - self.exported), [])


if __name__ == "__main__":
    unittest.main()
