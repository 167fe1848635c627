#!/usr/bin/python3
"""weightmap.open against NumPy and torch on the same weights: time to the first tensor, time
to every tensor, the time to then read every byte (the sums of all tensors: page faults on
mapped tensors), and the private (anonymous) resident memory the method added by then.

    WEIGHTMAP_LIBRARY=build/libweightmap_c.so PYTHONPATH=python \\
        /usr/bin/python3 bench/python_open_bench.py out/pybench [--tensors 64] [--mib 4]

Writes DIR/weights.safetensors and DIR/weights.pt (the same f32 tensors), reads each once to
warm the page cache, then runs every method --runs times, each run in a fresh python3 so one
method's memory does not count against another's. Prints medians and ratios to weightmap.
Every time is measured inside the process from the call on (imports excluded).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

METHODS = {
    # name: (file, code that sets `first` (the first tensor) and then `tensors` (all of them))
    "weightmap.open (safetensors)": ("weights.safetensors", """
model = weightmap.open(path)
names = list(model)
first = model[names[0]]
mark_first()
tensors = [model[name] for name in names]
"""),
    "weightmap.open (.pt)": ("weights.pt", """
model = weightmap.open(path)
names = list(model)
first = model[names[0]]
mark_first()
tensors = [model[name] for name in names]
"""),
    "numpy.fromfile (safetensors data)": ("weights.safetensors", """
with open(path, "rb") as f:
    header_length = int.from_bytes(f.read(8), "little")
    header = json.loads(f.read(header_length))
data = np.fromfile(path, dtype=np.uint8, offset=8 + header_length)
entries = [(name, entry) for name, entry in header.items() if name != "__metadata__"]
def view(entry):
    begin, end = entry["data_offsets"]
    return data[begin:end].view(np.float32).reshape(entry["shape"])
first = view(entries[0][1])
mark_first()
tensors = [view(entry) for _, entry in entries]
"""),
    "torch.load (.pt)": ("weights.pt", """
import torch
state = torch.load(path)
first = next(iter(state.values()))
mark_first()
tensors = list(state.values())
"""),
}

RUNNER = """
import sys, time
path = sys.argv[1]
import numpy as np
{preload}
def private_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0
marks = {{}}
before = private_bytes()
def mark_first():
    marks["first"] = time.perf_counter() - start
start = time.perf_counter()
{code}
marks["all"] = time.perf_counter() - start
total = 0.0
start = time.perf_counter()
for tensor in tensors:  # read every byte
    total += float(tensor.sum())
marks["read"] = time.perf_counter() - start
print(marks["first"], marks["all"], private_bytes() - before, marks["read"])
"""


def write_weights(directory, tensors, mib):
    import numpy as np
    import torch

    elements = mib * (1 << 20) // 4
    rng = np.random.default_rng(0)
    arrays = {f"layer.{i}.weight": rng.standard_normal(elements, dtype=np.float32)
              .reshape(-1, 1024) for i in range(tensors)}
    header, offset = {}, 0
    for name, array in arrays.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header_bytes = json.dumps(header).encode()
    # The data area 64-aligned in the file, so every tensor is mappable for a 32-byte device.
    header_bytes += b" " * (-(8 + len(header_bytes)) % 64)
    with open(os.path.join(directory, "weights.safetensors"), "wb") as f:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        for array in arrays.values():
            f.write(array.tobytes())
    torch.save({name: torch.from_numpy(array) for name, array in arrays.items()},
               os.path.join(directory, "weights.pt"))


def run(method, directory):
    file_name, code = METHODS[method]
    path = os.path.join(directory, file_name)
    # Every module is imported (and libweightmap_c loaded) before the clock starts, so no
    # method pays for imports or counts their memory.
    script = RUNNER.format(preload="import json, torch, weightmap", code=code)
    out = subprocess.run([sys.executable, "-c", script, path], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2]), float(out[3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--tensors", type=int, default=64)
    parser.add_argument("--mib", type=int, default=4, help="MiB per tensor")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    write_weights(args.directory, args.tensors, args.mib)
    for name in ("weights.safetensors", "weights.pt"):  # warm the page cache
        with open(os.path.join(args.directory, name), "rb") as f:
            while f.read(1 << 24):
                pass

    results = {}
    for method in METHODS:
        runs = [run(method, args.directory) for _ in range(args.runs)]
        results[method] = tuple(statistics.median(r[i] for r in runs) for i in range(4))

    size_mib = args.tensors * args.mib
    print(f"{args.tensors} f32 tensors, {size_mib} MiB, page cache warm, medians of {args.runs}")
    print(f"{'method':36} {'first (ms)':>11} {'all (ms)':>9} {'read (ms)':>10} "
          f"{'+private MiB':>13}")
    for method, (first, every, anon, read) in results.items():
        print(f"{method:36} {first * 1e3:11.2f} {every * 1e3:9.2f} {read * 1e3:10.2f} "
              f"{anon / 2**20:13.1f}")
    base = results["weightmap.open (safetensors)"]
    base_pt = results["weightmap.open (.pt)"]
    print("\nratios (other / weightmap; above 1: weightmap is faster or smaller)")
    for method, reference in (("numpy.fromfile (safetensors data)", base),
                              ("torch.load (.pt)", base_pt)):
        first, every, anon, _ = results[method]
        print(f"{method:36} first {first / reference[0]:8.1f}x  all {every / reference[1]:8.1f}x"
              f"  private memory {anon / 2**20:.1f} MiB against {reference[2] / 2**20:.1f} MiB")
    print("torch.load(mmap=True): not in Debian 12's torch 1.13 (added in torch 2.1)")


if __name__ == "__main__":
    main()
