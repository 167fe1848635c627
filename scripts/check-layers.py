#!/usr/bin/env python3
"""Fails when a file includes a layer above its own, or the CLI includes the library's src/.

The layers, lowest first (docs/design.md draws them). A file may include its own layer and any
layer of a lower rank; layers of the same rank are siblings and may not include each other.
Every file under src/ and include/weightmap/ must belong to a layer, so a new folder or public
header is placed on purpose. Public headers belong to the layer that implements them.

Usage: scripts/check-layers.py [ROOT]   (ROOT defaults to the checkout this script is in)
Prints one line per broken include (file:line: what it includes and why that is refused) and
exits 1 when there is any; prints a one-line summary and exits 0 otherwise.
"""
import pathlib
import re
import sys

PUBLIC = "include/weightmap/"

# (name, rank, owned paths): a path ending in "/" owns a folder, any other names one file.
LAYERS = [
    ("base", 0, ["src/error.cpp", "src/version.cpp", "src/checked_math.hpp", "src/platform.hpp",
                 "src/byte_units.hpp",
                 PUBLIC + "error.hpp", PUBLIC + "export.hpp", PUBLIC + "version.hpp"]),
    ("dtype", 1, ["src/dtype/", PUBLIC + "dtype.hpp", PUBLIC + "convert.hpp"]),
    ("io", 2, ["src/io/", PUBLIC + "file_identity.hpp", PUBLIC + "mapped_file.hpp",
               PUBLIC + "fault_guard.hpp", PUBLIC + "cache_policy.hpp",
               PUBLIC + "file_facts.hpp", PUBLIC + "native_file_handle.hpp"]),
    ("format", 3, ["src/format/", PUBLIC + "metadata.hpp", PUBLIC + "tensor_info.hpp",
                   PUBLIC + "model.hpp", PUBLIC + "writer.hpp", PUBLIC + "realign.hpp"]),
    ("load", 4, ["src/load/", PUBLIC + "load.hpp", PUBLIC + "load_mode.hpp",
                 PUBLIC + "load_options.hpp",
                 PUBLIC + "load_report.hpp", PUBLIC + "loaded_model.hpp", PUBLIC + "plan.hpp",
                 PUBLIC + "reason.hpp", PUBLIC + "tensor_request.hpp",
                 PUBLIC + "tensor_storage.hpp", PUBLIC + "prefetch.hpp",
                 PUBLIC + "model_page_cache.hpp"]),
    ("lora", 5, ["src/lora/", PUBLIC + "lora.hpp", PUBLIC + "lora_file.hpp",
                 PUBLIC + "lora_match.hpp", PUBLIC + "lora_use.hpp",
                 PUBLIC + "lora_quant_codec.hpp", PUBLIC + "lora_patcher.hpp",
                 PUBLIC + "lora_runtime.hpp", PUBLIC + "lora_merge.hpp"]),
    ("capi", 6, ["src/capi/", PUBLIC + "weightmap.h"]),
    ("ggml", 6, ["src/ggml/", PUBLIC + "ggml.hpp", PUBLIC + "ggml_types.hpp",
                 PUBLIC + "ggml_lora.hpp"]),
    # The umbrella header: the whole C++ API but the ggml adapter.
    ("api", 6, [PUBLIC + "weightmap.hpp"]),
    # The CLI and the testbed library (tools/testbed): public headers only (the rule below),
    # never src/.
    ("tools", 7, ["tools/"]),
]

# Where a quoted include is looked up, in the order the build's include paths give.
SEARCH_ROOTS = ["include", "src", "tools"]
CHECKED = ["src", "include", "tools"]
SOURCE_SUFFIXES = {".cpp", ".hpp", ".h", ".c"}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def layer_of(relative):
    best = None
    for name, rank, paths in LAYERS:
        for path in paths:
            owns = relative.startswith(path) if path.endswith("/") else relative == path
            if owns and (best is None or len(path) > best[2]):
                best = (name, rank, len(path))
    return best


def resolve(root, including, target):
    """The checkout-relative path an include names, or None for a system/third-party header."""
    beside = (root / including).parent / target
    if beside.is_file():
        return beside.resolve().relative_to(root).as_posix()
    for search_root in SEARCH_ROOTS:
        candidate = root / search_root / target
        if candidate.is_file():
            return candidate.resolve().relative_to(root).as_posix()
    return None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else __file__).resolve()
    if root.is_file():
        root = root.parent.parent
    problems = []
    checked = 0
    for folder in CHECKED:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            relative = path.relative_to(root).as_posix()
            own = layer_of(relative)
            if own is None:
                problems.append(f"{relative}: belongs to no layer; add it to LAYERS in "
                                f"scripts/check-layers.py and to docs/design.md")
                continue
            checked += 1
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                target = resolve(root, relative, match.group(1))
                if target is None:
                    continue
                if own[0] == "tools" and target.startswith("src/"):
                    problems.append(f"{relative}:{number}: includes {target}: the CLI uses "
                                    f"the public API (include/weightmap/) only")
                    continue
                theirs = layer_of(target)
                if theirs is None or theirs[0] == own[0]:
                    continue
                if theirs[1] >= own[1]:
                    problems.append(f"{relative}:{number}: includes {target}: layer "
                                    f"{own[0]} may not include layer {theirs[0]}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"check-layers: {len(problems)} broken include(s)")
        return 1
    print(f"check-layers: {checked} files, every include goes to its own layer or one below")
    return 0


if __name__ == "__main__":
    sys.exit(main())
