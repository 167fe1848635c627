#!/usr/bin/env python3
"""Check that gguf-py's GGUFReader reads a GGUF file written by weightmap's writer.

Usage: gguf_check_written.py FILE.gguf
FILE is the one tests/writer_test.cpp (GgufPyReadsOurFileWithValuesAndTensorsIntact) writes:
its keys, values, tensors and the byte pattern (tensor i, byte b) -> (i * 37 + b) % 251 are
repeated here. Prints every mismatch and exits 1 if there is one. Run with
PYTHONPATH=<llama.cpp>/gguf-py.
"""

import sys

from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as Q
from gguf.constants import GGUFValueType as V

EXPECTED_KV = {
    "general.architecture": (V.STRING, "llama"),
    "t.u8": (V.UINT8, 255),
    "t.i8": (V.INT8, -128),
    "t.u16": (V.UINT16, 65535),
    "t.i16": (V.INT16, -32768),
    "t.u32": (V.UINT32, 4294967295),
    "t.i32": (V.INT32, -2147483648),
    "t.u64": (V.UINT64, 18446744073709551615),
    "t.i64": (V.INT64, -9223372036854775808),
    "t.f32": (V.FLOAT32, 0.25),
    "t.f64": (V.FLOAT64, -1e300),
    "t.bool": (V.BOOL, True),
    "t.string": (V.STRING, 'h\u00e9llo "quoted"'),
    "t.empty_string": (V.STRING, ""),
    "t.strings": (V.ARRAY, ["a", "bc"]),
    "t.i32s": (V.ARRAY, [-1, 7]),
    "t.f32s": (V.ARRAY, [1.5, -2.0]),
    "t.bools": (V.ARRAY, [False, True]),
    "t.empty_array": (V.ARRAY, []),
    "t.nested": (V.ARRAY, None),  # contents() cannot read arrays of arrays; types are checked
    "general.alignment": (V.UINT32, 64),
}

# name -> (type, shape innermost first as GGUF stores it)
EXPECTED_TENSORS = [
    ("token_embd.weight", Q.F16, [16, 7]),
    ("blk.0.attn_q.weight", Q.Q8_0, [64, 4]),
    ("blk.0.attn_norm.weight", Q.F32, [16]),
    ("blk.0.ffn_up.weight", Q.BF16, [8, 3, 2]),
    ("blk.0.ffn_down.weight", Q.Q4_K, [256, 2]),
]


def main():
    reader = GGUFReader(sys.argv[1])
    problems = []
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    if keys != list(EXPECTED_KV):
        problems.append(f"keys {keys} != {list(EXPECTED_KV)}")
    for key, (vtype, value) in EXPECTED_KV.items():
        field = reader.fields.get(key)
        if field is None:
            continue
        if field.types[0] != vtype:
            problems.append(f"{key}: type {field.types} != {vtype}")
        elif value is None:
            if field.types[:2] != [V.ARRAY, V.ARRAY]:
                problems.append(f"{key}: types {field.types} are not an array of arrays")
        elif field.contents() != value:
            problems.append(f"{key}: value {field.contents()!r} != {value!r}")
    if reader.alignment != 64:
        problems.append(f"alignment {reader.alignment} != 64")
    if len(reader.tensors) != len(EXPECTED_TENSORS):
        problems.append(f"{len(reader.tensors)} tensors, expected {len(EXPECTED_TENSORS)}")
    for i, (tensor, (name, ttype, shape)) in enumerate(zip(reader.tensors, EXPECTED_TENSORS)):
        if tensor.name != name or tensor.tensor_type != ttype or list(tensor.shape) != shape:
            problems.append(
                f"tensor {i}: {tensor.name} {tensor.tensor_type!r} {list(tensor.shape)} != "
                f"{name} {ttype!r} {shape}")
        if tensor.data_offset % 64 != 0:
            problems.append(f"{name}: offset {tensor.data_offset} is not 64-byte aligned")
        data = tensor.data.tobytes()
        if len(data) != tensor.n_bytes:
            problems.append(f"{name}: {len(data)} bytes of data, n_bytes says {tensor.n_bytes}")
        expected = bytes((i * 37 + b) % 251 for b in range(len(data)))
        if data != expected:
            problems.append(f"{name}: tensor bytes differ from the pattern")
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
