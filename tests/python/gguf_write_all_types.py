#!/usr/bin/env python3
"""Write GGUF fixtures with gguf-py's GGUFWriter, plus manifests of what was written.

Usage: gguf_write_all_types.py OUT_DIR   (run with PYTHONPATH=<llama.cpp>/gguf-py)

  all_types.gguf      one tensor of every GGMLQuantizationType the writer can write: numpy
                      arrays for the plain types, raw bytes of the right size (raw_dtype) for
                      the others
  aligned64.gguf      general.alignment = 64, tensors whose sizes are not multiples of 64
  metadata.gguf       a key of every metadata value type, arrays and nested arrays, no tensors
  <name>.json         manifest: {"alignment", "data_offset",
                                 "tensors": [{"name", "type", "shape", "offset", "n_bytes"}],
                                 "kv": [[key, type_name, value], ...]}

Shapes are outermost first and offsets absolute. Offsets come from the writer's layout rule
(data section at the end of the file, every tensor padded to the alignment), not from a
reader, so the C++ reader is checked against what was written.
"""

import json
import os
import sys

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

PLAIN_NUMPY_TYPES = {
    GGMLQuantizationType.F32: np.float32,
    GGMLQuantizationType.F16: np.float16,
    GGMLQuantizationType.F64: np.float64,
    GGMLQuantizationType.I8: np.int8,
    GGMLQuantizationType.I16: np.int16,
    GGMLQuantizationType.I32: np.int32,
    GGMLQuantizationType.I64: np.int64,
}

# Outermost-first shapes for the plain types, to cover 1 to 4 dimensions.
PLAIN_SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 5)]


def pad(n, alignment):
    return (n + alignment - 1) // alignment * alignment


def finish(writer, path, tensors, alignment):
    """Writes the file; fills in absolute offsets from the writer's layout."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data_bytes = sum(pad(t["n_bytes"], alignment) for t in tensors)
    data_offset = os.path.getsize(path) - data_bytes
    if tensors:
        assert data_offset % alignment == 0, (path, data_offset)
    offset = data_offset
    for t in tensors:
        t["offset"] = offset
        offset += pad(t["n_bytes"], alignment)
    return data_offset


def write_manifest(path, alignment, data_offset, tensors, kv):
    with open(path + ".json", "w", encoding="utf-8") as f:
        json.dump(
            {"alignment": alignment, "data_offset": data_offset, "tensors": tensors, "kv": kv},
            f,
            ensure_ascii=False,
        )


def add_tensor(writer, tensors, name, qtype, shape, index):
    """shape is the logical (element) shape, outermost first."""
    if qtype in PLAIN_NUMPY_TYPES:
        count = int(np.prod(shape))
        array = (np.arange(count) % 7 + index).astype(PLAIN_NUMPY_TYPES[qtype]).reshape(shape)
        writer.add_tensor(name, array)
        n_bytes = array.nbytes
    else:
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        assert shape[-1] % block_size == 0
        byte_shape = (*shape[:-1], shape[-1] // block_size * type_size)
        raw = (np.arange(int(np.prod(byte_shape))) % 251).astype(np.uint8).reshape(byte_shape)
        writer.add_tensor(name, raw, raw_dtype=qtype)
        n_bytes = raw.nbytes
    tensors.append(
        {"name": name, "type": int(qtype), "type_name": qtype.name, "shape": list(shape),
         "n_bytes": n_bytes})


def write_all_types(out_dir):
    path = os.path.join(out_dir, "all_types.gguf")
    writer = GGUFWriter(path, "llama")
    tensors = []
    for index, qtype in enumerate(GGMLQuantizationType):
        # gguf-py sizes Q8_1 blocks at 40 bytes (f32 d and s, an old layout); ggml's block_q8_1
        # is 36 (f16 d and s) and weightmap follows ggml. Q8_1 is ggml's intermediate for dot
        # products, never a stored weight type, so files hold no Q8_1 to disagree about.
        if qtype == GGMLQuantizationType.Q8_1:
            continue
        block_size, _ = GGML_QUANT_SIZES[qtype]
        if qtype in PLAIN_NUMPY_TYPES:
            shape = PLAIN_SHAPES[index % len(PLAIN_SHAPES)]
        else:
            shape = (3, 2 * block_size)
        add_tensor(writer, tensors, f"blk.{index}.{qtype.name.lower()}.weight", qtype, shape,
                   index)
    data_offset = finish(writer, path, tensors, 32)
    write_manifest(path, 32, data_offset, tensors, [["general.architecture", "STRING", "llama"]])


def write_aligned64(out_dir):
    path = os.path.join(out_dir, "aligned64.gguf")
    writer = GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    tensors = []
    add_tensor(writer, tensors, "a", GGMLQuantizationType.F32, (3,), 0)  # 12 bytes
    add_tensor(writer, tensors, "b", GGMLQuantizationType.Q4_0, (1, 32), 1)  # 18 bytes
    add_tensor(writer, tensors, "c", GGMLQuantizationType.F16, (5, 7), 2)  # 70 bytes
    data_offset = finish(writer, path, tensors, 64)
    write_manifest(path, 64, data_offset, tensors,
                   [["general.architecture", "STRING", "llama"],
                    ["general.alignment", "UINT32", 64]])


# key, GGUF value type, element type of a top-level array (None: inferred), value, type_name.
METADATA = [
    ("test.u8", GGUFValueType.UINT8, None, 255, "UINT8"),
    ("test.i8", GGUFValueType.INT8, None, -128, "INT8"),
    ("test.u16", GGUFValueType.UINT16, None, 65535, "UINT16"),
    ("test.i16", GGUFValueType.INT16, None, -32768, "INT16"),
    ("test.u32", GGUFValueType.UINT32, None, 4294967295, "UINT32"),
    ("test.i32", GGUFValueType.INT32, None, -2147483648, "INT32"),
    ("test.f32", GGUFValueType.FLOAT32, None, 0.1, "FLOAT32"),
    ("test.f32_exact", GGUFValueType.FLOAT32, None, -1.25, "FLOAT32"),
    ("test.bool_true", GGUFValueType.BOOL, None, True, "BOOL"),
    ("test.bool_false", GGUFValueType.BOOL, None, False, "BOOL"),
    ("test.string", GGUFValueType.STRING, None, "h\u00e9llo \u2603 \U0001f600", "STRING"),
    ("test.string_empty", GGUFValueType.STRING, None, "", "STRING"),
    ("test.u64", GGUFValueType.UINT64, None, 18446744073709551615, "UINT64"),
    ("test.i64", GGUFValueType.INT64, None, -9223372036854775808, "INT64"),
    ("test.f64", GGUFValueType.FLOAT64, None, 0.1, "FLOAT64"),
    ("test.array_u8", GGUFValueType.ARRAY, GGUFValueType.UINT8, [0, 1, 255], "ARRAY[UINT8]"),
    ("test.array_i16", GGUFValueType.ARRAY, GGUFValueType.INT16, [-1, 2], "ARRAY[INT16]"),
    ("test.array_u64", GGUFValueType.ARRAY, GGUFValueType.UINT64, [18446744073709551615, 0],
     "ARRAY[UINT64]"),
    ("test.array_i64", GGUFValueType.ARRAY, GGUFValueType.INT64, [-9223372036854775808, 7],
     "ARRAY[INT64]"),
    ("test.array_f32", GGUFValueType.ARRAY, GGUFValueType.FLOAT32, [0.5, 0.1, -3.0],
     "ARRAY[FLOAT32]"),
    ("test.array_f64", GGUFValueType.ARRAY, GGUFValueType.FLOAT64, [0.1, 1e300],
     "ARRAY[FLOAT64]"),
    ("test.array_bool", GGUFValueType.ARRAY, None, [True, False, True], "ARRAY[BOOL]"),
    ("test.array_string", GGUFValueType.ARRAY, None, ["a", "", "\u00fc"], "ARRAY[STRING]"),
    ("test.array_nested", GGUFValueType.ARRAY, None, [[1, 2], [3]], "ARRAY[ARRAY[INT32]]"),
    ("test.array_nested_strings", GGUFValueType.ARRAY, None, [["x"], ["y", "z"]],
     "ARRAY[ARRAY[STRING]]"),
    ("test.array_nested_3", GGUFValueType.ARRAY, None, [[[1.5]], [[2.5, 3.5]]],
     "ARRAY[ARRAY[ARRAY[FLOAT32]]]"),
]


def write_metadata(out_dir):
    path = os.path.join(out_dir, "metadata.gguf")
    writer = GGUFWriter(path, "llama")
    kv = [["general.architecture", "STRING", "llama"]]
    for key, vtype, sub_type, value, type_name in METADATA:
        # add_key_value, not add_string/add_array: those silently skip empty values.
        writer.add_key_value(key, value, vtype, sub_type)
        kv.append([key, type_name, value])
    data_offset = finish(writer, path, [], 32)
    write_manifest(path, 32, data_offset, [], kv)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gguf_write_all_types.py OUT_DIR")
    out_dir = sys.argv[1]
    write_all_types(out_dir)
    write_aligned64(out_dir)
    write_metadata(out_dir)


if __name__ == "__main__":
    main()
