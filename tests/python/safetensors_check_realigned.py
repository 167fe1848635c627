#!/usr/bin/env python3
"""Check a safetensors file written by `weightmap realign` against the file it came from.

Usage: safetensors_check_realigned.py IN OUT ALIGNMENT [UNALIGNED_NAME...]
Reads both files with the `safetensors` package when it is installed; checks OUT's layout
against the format's rules as the safetensors crate validates them in any case (header length,
a JSON object, every tensor's data_offsets tiling the data area from 0 to the end of the file
without gaps or overlaps, sizes equal to dtype x shape). Then: the data area starts on
ALIGNMENT; `__metadata__` is identical (order included); every tensor of IN is in OUT with
the same dtype, shape and bytes; tensors only in OUT are zero-filled U8 `__padding_N__`; every
tensor of IN starts on ALIGNMENT except exactly the UNALIGNED_NAMEs. Prints every problem and
exits 1 if there is one.
"""

import json
import math
import re
import struct
import sys

DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
}
MAX_HEADER = 100_000_000


class SafetensorsFile:
    def __init__(self, path, problems):
        with open(path, "rb") as f:
            self.raw = f.read()
        (n,) = struct.unpack("<Q", self.raw[:8])
        if n > MAX_HEADER or 8 + n > len(self.raw):
            problems.append(f"{path}: header length {n} is out of bounds")
        text = self.raw[8:8 + n].decode("utf-8")
        if not text.startswith("{"):
            problems.append(f"{path}: the header does not start with '{{'")
        header = json.loads(text)
        self.data_start = 8 + n
        self.metadata = header.pop("__metadata__", None)
        self.tensors = header
        self.check_tiling(path, problems)

    def check_tiling(self, path, problems):
        end = 0
        for name, info in sorted(self.tensors.items(), key=lambda kv: kv[1]["data_offsets"]):
            begin, stop = info["data_offsets"]
            if begin != end or stop < begin:
                problems.append(f"{path}: {name} at [{begin}, {stop}) leaves a gap or overlaps")
            bits = math.prod(info["shape"]) * DTYPE_BITS[info["dtype"]]
            if bits % 8 != 0 or stop - begin != bits // 8:
                problems.append(f"{path}: {name} holds {stop - begin} bytes, not dtype x shape")
            end = stop
        if self.data_start + end != len(self.raw):
            problems.append(f"{path}: data ends at {self.data_start + end}, the file at "
                            f"{len(self.raw)}")

    def offset(self, name):
        return self.data_start + self.tensors[name]["data_offsets"][0]

    def data(self, name):
        begin, stop = self.tensors[name]["data_offsets"]
        return self.raw[self.data_start + begin:self.data_start + stop]


def check_with_safetensors_package(path, expected_names, problems):
    try:
        from safetensors import safe_open
    except ImportError:
        return
    with safe_open(path, framework="numpy") as f:
        if set(f.keys()) != expected_names:
            problems.append(f"safetensors reads {sorted(f.keys())}")


def main():
    in_path, out_path, alignment = sys.argv[1], sys.argv[2], int(sys.argv[3])
    expected_unaligned = set(sys.argv[4:])
    problems = []
    source = SafetensorsFile(in_path, problems)
    out = SafetensorsFile(out_path, problems)
    if out.data_start % alignment != 0:
        problems.append(f"the data area starts at {out.data_start}, not on {alignment}")
    if list((source.metadata or {}).items()) != list((out.metadata or {}).items()):
        problems.append(f"__metadata__ {out.metadata} != {source.metadata}")
    unaligned = set()
    for name, info in source.tensors.items():
        if name not in out.tensors:
            problems.append(f"{name} is missing")
            continue
        got = out.tensors[name]
        if got["dtype"] != info["dtype"] or got["shape"] != info["shape"]:
            problems.append(f"{name}: {got['dtype']} {got['shape']} != "
                            f"{info['dtype']} {info['shape']}")
        if out.data(name) != source.data(name):
            problems.append(f"{name}: bytes differ")
        if out.offset(name) % alignment != 0:
            unaligned.add(name)
    if unaligned != expected_unaligned:
        problems.append(f"unaligned tensors {sorted(unaligned)} != {sorted(expected_unaligned)}")
    for name in set(out.tensors) - set(source.tensors):
        info = out.tensors[name]
        if not re.fullmatch(r"__padding_\d+__", name) or info["dtype"] != "U8":
            problems.append(f"unexpected tensor {name} ({info['dtype']})")
        if any(out.data(name)):
            problems.append(f"padding tensor {name} is not zero-filled")
    check_with_safetensors_package(out_path, set(out.tensors), problems)
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
