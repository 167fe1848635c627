#!/usr/bin/env python3
"""Check a GGUF file written by `weightmap realign` against the file it came from, as gguf-py
reads them (through gguf_dump.py's dump()).

Usage: gguf_check_realigned.py IN OUT ALIGNMENT
OUT must have: gguf-py's alignment and general.alignment (u32) equal to ALIGNMENT; every
other key/value of IN with the same type and value, in the same order; the same tensors in
the same order with the same types and shapes; every tensor's data on ALIGNMENT and its bytes
equal to IN's. Prints every problem and exits 1 if there is one. Run with
PYTHONPATH=<llama.cpp>/gguf-py.
"""

import sys

from gguf_dump import dump

ALIGNMENT_KEY = "general.alignment"


def tensor_bytes(path, tensor):
    with open(path, "rb") as f:
        f.seek(tensor["offset"])
        return f.read(tensor["n_bytes"])


def main():
    in_path, out_path, alignment = sys.argv[1], sys.argv[2], int(sys.argv[3])
    source, out = dump(in_path), dump(out_path)
    problems = []
    if out["alignment"] != alignment:
        problems.append(f"gguf-py reads alignment {out['alignment']}, not {alignment}")
    out_kv = [kv for kv in out["kv"] if kv[0] != ALIGNMENT_KEY]
    source_kv = [kv for kv in source["kv"] if kv[0] != ALIGNMENT_KEY]
    if out_kv != source_kv:
        problems.append("key/values other than general.alignment differ")
    alignment_kv = [kv for kv in out["kv"] if kv[0] == ALIGNMENT_KEY]
    allowed = [[[ALIGNMENT_KEY, "UINT32", alignment]]] + ([[]] if alignment == 32 else [])
    if alignment_kv not in allowed:
        problems.append(f"general.alignment is {alignment_kv}")
    if len(out["tensors"]) != len(source["tensors"]):
        problems.append(f"{len(out['tensors'])} tensors, expected {len(source['tensors'])}")
    for got, want in zip(out["tensors"], source["tensors"]):
        name = want["name"]
        if [got[k] for k in ("name", "type", "shape", "n_bytes")] != \
                [want[k] for k in ("name", "type", "shape", "n_bytes")]:
            problems.append(f"tensor {got} != {want}")
        if got["offset"] % alignment != 0:
            problems.append(f"{name}: offset {got['offset']} is not on {alignment}")
        if tensor_bytes(out_path, got) != tensor_bytes(in_path, want):
            problems.append(f"{name}: bytes differ")
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
