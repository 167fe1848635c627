#!/usr/bin/env python3
"""Write a LoRA adapter GGUF the way llama.cpp's convert_lora_to_gguf.py lays it out.

Usage: lora_write_gguf_adapter.py OUT.gguf   (run with PYTHONPATH=<llama.cpp>/gguf-py)

general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (f32); for each base
tensor "<base>.lora_a" of numpy shape (rank, in) and "<base>.lora_b" of shape (out, rank),
both f32. Values follow the formula in lora_values() so the C++ test can recompute them.
"""
import sys

import numpy as np
from gguf import GGUFWriter, GGUFType

RANK = 2
ALPHA = 4.0
# base tensor -> (out, in)
TARGETS = {"blk.0.attn_q.weight": (6, 8), "blk.1.ffn_up.weight": (5, 8)}


def lora_values(count, seed):
    """(i * 7 + seed * 3) % 11 - 5, over 16: small exact binary fractions."""
    i = np.arange(count, dtype=np.int64)
    return (((i * 7 + seed * 3) % 11) - 5).astype(np.float32) / 16.0


def main(path):
    writer = GGUFWriter(path, "llama")
    writer.add_type(GGUFType.ADAPTER)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", ALPHA)
    for seed, (name, (rows, cols)) in enumerate(TARGETS.items()):
        a = lora_values(RANK * cols, 2 * seed).reshape(RANK, cols)
        b = lora_values(rows * RANK, 2 * seed + 1).reshape(rows, RANK)
        writer.add_tensor(name + ".lora_a", a)
        writer.add_tensor(name + ".lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main(sys.argv[1])
