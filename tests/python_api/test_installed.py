"""`cmake --install` into a temporary prefix gives a package that python3 imports from there
and that finds its library without WEIGHTMAP_LIBRARY, ldconfig or LD_LIBRARY_PATH."""

import glob
import os
import subprocess
import sys
import tempfile
import unittest

from fixtures import FixtureTestCase


class InstalledPackageTest(FixtureTestCase):
    def test_the_installed_package_opens_a_model(self):
        with tempfile.TemporaryDirectory(prefix="weightmap_install_") as prefix:
            subprocess.run([os.environ["WEIGHTMAP_TEST_CMAKE"], "--install",
                            os.environ["WEIGHTMAP_TEST_BUILD_DIR"], "--prefix", prefix],
                           check=True, capture_output=True)
            packages = glob.glob(os.path.join(prefix, "lib", "python3*", "dist-packages"))
            self.assertEqual(len(packages), 1, packages)
            environment = {key: value for key, value in os.environ.items()
                           if key not in ("WEIGHTMAP_LIBRARY", "PYTHONPATH", "LD_LIBRARY_PATH")}
            environment["PYTHONPATH"] = packages[0]
            script = ("import weightmap, sys; m = weightmap.open(sys.argv[1]); "
                      "print(weightmap.__file__); print(m['a.weight'][0, :2].tolist())")
            out = subprocess.run([sys.executable, "-c", script, self.path("model.safetensors")],
                                 env=environment, cwd=prefix, check=True, capture_output=True,
                                 text=True).stdout.splitlines()
            self.assertTrue(out[0].startswith(packages[0]), out)
            self.assertEqual(out[1], "[-2.0, -1.75]")


if __name__ == "__main__":
    unittest.main()
