#!/usr/bin/env python3
"""A reference LoRA merge, computed with numpy apart from weightmap's code.

Usage: lora_reference_merge.py BASE OUT_DIR [--lora LORA MULT [--target MODULE TENSOR ROW]...]...
(run with PYTHONPATH=<llama.cpp>/gguf-py for a GGUF base)

BASE is a safetensors file (f32, f16 or bf16 tensors) or a GGUF (f32, f16 or q8_0 tensors).
Each --lora is a kohya-spelled safetensors file: MODULE.lora_down.weight [rank, cols],
MODULE.lora_up.weight [rows, rank], MODULE.alpha; the scale is MULT * alpha / rank. Each
--target after it adds scale * up @ down of MODULE to the rows [ROW, ROW + up rows) of the
base tensor TENSOR (a whole tensor, or a slice of a fused one).

Float tensors: the merged values W + sum of every delta are computed in float64 and rounded
to the tensor's type once, to nearest even. q8_0 tensors: each --lora in turn is added to
the dequantized values in float64, rounded to float32 and quantized again (gguf-py's q8_0,
which equals ggml's reference quantizer), on the rows it patches only, as a q8_0 model
patched one LoRA after another holds them.

Writes OUT_DIR/<tensor>.f64: every base tensor's values after the merge (the values of the
rounded type, as float64, row-major).
"""
import json
import os
import struct
import sys

import numpy as np


def bf16_bits_to_f64(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def round_to_bf16(values):
    """float64 -> the nearest bfloat16 (8 significant bits), ties to even, in one step."""
    mantissa, exponent = np.frexp(values)
    return np.ldexp(np.rint(np.ldexp(mantissa, 8)), exponent - 8)


def round_to(dtype, values):
    if dtype == "F32":
        return values.astype(np.float32).astype(np.float64)
    if dtype == "F16":
        return values.astype(np.float16).astype(np.float64)
    if dtype == "BF16":
        return round_to_bf16(values)
    raise ValueError(f"no float rounding for {dtype}")


def read_safetensors(path):
    """name -> (dtype, shape, float64 values)"""
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[base + begin : base + end]
        dtype = entry["dtype"]
        if dtype == "F32":
            values = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dtype == "F16":
            values = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dtype == "BF16":
            values = bf16_bits_to_f64(np.frombuffer(raw, dtype="<u2"))
        else:
            raise ValueError(f"{name}: dtype {dtype}")
        out[name] = (dtype, list(entry["shape"]), values)
    return out


class FloatBase:
    """Exact sums in float64, one rounding at the end."""

    def __init__(self, path):
        self.tensors = read_safetensors(path)
        self.sums = {name: values.copy() for name, (_, _, values) in self.tensors.items()}

    def matrix(self, name):
        shape = self.tensors[name][1]
        return self.sums[name].reshape(shape[0], -1)

    def end_of_lora(self, touched):
        pass

    def results(self):
        for name, (dtype, _, _) in self.tensors.items():
            yield name, round_to(dtype, self.sums[name])


class GgufBase:
    """Float tensors as FloatBase; q8_0 tensors requantized after each LoRA."""

    def __init__(self, path):
        from gguf import GGMLQuantizationType, GGUFReader
        from gguf import quants

        self.quants = quants
        self.q8_0 = GGMLQuantizationType.Q8_0
        self.types = {}
        self.sums = {}
        for tensor in GGUFReader(path).tensors:
            shape = [int(n) for n in reversed(tensor.shape)]  # outermost first
            kind = tensor.tensor_type
            if kind == GGMLQuantizationType.F32:
                values, dtype = np.array(tensor.data, dtype=np.float64), "F32"
            elif kind == GGMLQuantizationType.F16:
                values, dtype = np.array(tensor.data, dtype=np.float64), "F16"
            elif kind == self.q8_0:
                values = quants.dequantize(np.array(tensor.data), kind).astype(np.float64)
                dtype = "Q8_0"
            else:
                raise ValueError(f"{tensor.name}: type {kind}")
            self.types[tensor.name] = dtype
            self.sums[tensor.name] = values.reshape(shape[0], -1)

    def matrix(self, name):
        return self.sums[name]

    def end_of_lora(self, touched):
        for name, rows in touched.items():
            if self.types[name] != "Q8_0":
                continue
            m = self.sums[name]
            for begin, end in rows:
                part = m[begin:end].astype(np.float32)
                again = self.quants.quantize(part, self.q8_0)
                m[begin:end] = self.quants.dequantize(again, self.q8_0).astype(np.float64)

    def results(self):
        for name, dtype in self.types.items():
            values = self.sums[name].reshape(-1)
            yield name, values if dtype == "Q8_0" else round_to(dtype, values)


def main(argv):
    base_path, out_dir = argv[0], argv[1]
    base = GgufBase(base_path) if base_path.endswith(".gguf") else FloatBase(base_path)
    lora = None
    touched = {}
    i = 2
    while i < len(argv):
        if argv[i] == "--lora":
            if lora is not None:
                base.end_of_lora(touched)
            lora = read_safetensors(argv[i + 1])
            multiplier = float(argv[i + 2])
            touched = {}
            i += 3
        elif argv[i] == "--target":
            module, tensor, row = argv[i + 1], argv[i + 2], int(argv[i + 3])
            down = lora[module + ".lora_down.weight"]
            up = lora[module + ".lora_up.weight"]
            alpha = lora[module + ".alpha"][2][0]
            rank = down[1][0]
            scale = multiplier * alpha / rank
            up_m = up[2].reshape(up[1][0], rank)
            down_m = down[2].reshape(rank, -1)
            rows = up_m.shape[0]
            base.matrix(tensor)[row : row + rows] += scale * (up_m @ down_m)
            touched.setdefault(tensor, []).append((row, row + rows))
            i += 4
        else:
            raise ValueError(f"unknown argument {argv[i]}")
    if lora is not None:
        base.end_of_lora(touched)
    for name, values in base.results():
        values.astype("<f8").tofile(os.path.join(out_dir, name + ".f64"))


if __name__ == "__main__":
    main(sys.argv[1:])
