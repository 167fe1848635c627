#!/usr/bin/env python3
"""Dump what gguf-py's GGUFReader sees in GGUF files, as JSON for tests/gguf_test.cpp.

Usage: gguf_dump.py OUT_DIR FILE.gguf...
Writes OUT_DIR/<basename of FILE>.json for each file:
  {"tensor_count", "kv_count", "alignment", "data_offset",
   "kv": [[key, type_name, value], ...],       # file order, without gguf-py's GGUF.* fields
   "tensors": [{"name", "type", "shape", "offset", "n_bytes"}, ...]}
type_name is "UINT32", "STRING", "ARRAY[INT32]", "ARRAY[ARRAY[UINT8]]"...; shape is outermost
first; offset is absolute in the file. Non-finite floats are written as the strings "nan",
"inf", "-inf" (JSON has no such numbers). Run with PYTHONPATH=<llama.cpp>/gguf-py.
"""

import json
import math
import multiprocessing
import os
import sys
import types

import numpy as np
from gguf import gguf_reader
from gguf.constants import GGUFValueType

# GGUFReader reads through np.memmap, whose per-slice bookkeeping makes a 256k-token vocab
# take ~16 s. Handing it a plain array of the same bytes changes nothing it computes and
# makes it 2.5x faster, which keeps the C++ test that compares against it short.
_numpy_with_plain_arrays = types.SimpleNamespace(**vars(np))
_numpy_with_plain_arrays.memmap = lambda path, mode="r": np.fromfile(path, dtype=np.uint8)
gguf_reader.np = _numpy_with_plain_arrays


def json_float(value):
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


FLOAT_TYPES = (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64)


def scalar(part, vtype):
    value = part.tolist()[0]
    return json_float(value) if vtype in FLOAT_TYPES else value


def walk(parts, i, vtype):
    """Value of type vtype starting at parts[i], and the index after it (nested arrays)."""
    if vtype == GGUFValueType.STRING:
        return str(parts[i + 1].tobytes(), encoding="utf-8"), i + 2
    if vtype == GGUFValueType.ARRAY:
        element = GGUFValueType(int(parts[i][0]))
        count = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(count):
            item, i = walk(parts, i, element)
            items.append(item)
        return items, i
    return scalar(parts[i], vtype), i + 1


def type_name(field_types):
    name = field_types[-1].name
    for outer in reversed(field_types[:-1]):
        name = f"{outer.name}[{name}]"
    return name


def field_value(field):
    main = field.types[0]
    if main == GGUFValueType.ARRAY and len(field.types) > 2:
        # contents() flattens nested arrays; walk the parts to keep the nesting. parts[0:3] are
        # the key length, key bytes and value type.
        value, _ = walk(field.parts, 3, main)
        return value
    value = field.contents()
    if main in FLOAT_TYPES:
        return json_float(value)
    if main == GGUFValueType.ARRAY and field.types[-1] in FLOAT_TYPES:
        return [json_float(v) for v in value]
    return value


def dump(path):
    reader = gguf_reader.GGUFReader(path)
    kv = [
        [name, type_name(field.types), field_value(field)]
        for name, field in reader.fields.items()
        if not name.startswith("GGUF.")
    ]
    tensors = [
        {
            "name": t.name,
            "type": int(t.tensor_type),
            "shape": [int(d) for d in reversed(t.shape.tolist())],
            "offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes),
        }
        for t in reader.tensors
    ]
    return {
        "tensor_count": int(reader.fields["GGUF.tensor_count"].parts[0][0]),
        "kv_count": int(reader.fields["GGUF.kv_count"].parts[0][0]),
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "kv": kv,
        "tensors": tensors,
    }


def dump_to(job):
    out_dir, path = job
    out = os.path.join(out_dir, os.path.basename(path) + ".json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(dump(path), f, ensure_ascii=False, allow_nan=False)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: gguf_dump.py OUT_DIR FILE.gguf...")
    out_dir, paths = sys.argv[1], sys.argv[2:]
    jobs = [(out_dir, p) for p in paths]
    if len(jobs) == 1:
        dump_to(jobs[0])
        return
    with multiprocessing.Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        pool.map(dump_to, jobs, chunksize=1)


if __name__ == "__main__":
    main()
