#!/usr/bin/python3
"""Times `weightmap load --mode M` for each mode on each model file, cold and warm, as whole
processes, and prints the medians.

    scripts/mode_bench.py [--weightmap build/weightmap] [--runs 6] [--modes auto,mmap,read]
                          [--caches cold,warm] [--load-args "--offload"] [--verbose] MODEL...

Each process maps or reads every tensor and then reads every byte of it (its checksum), so a
mapped load pays its page faults inside the time too. Cold: the file is dropped from the page
cache first (`weightmap cache --evict`) and the drop is checked (`weightmap cache --json`).
Warm: the file is read into the cache first (`weightmap cache --prefetch`). Run r takes the modes
in the r-th of their orders (all permutations, in turn): with a mere rotation each mode would
always follow the same other mode, and on this VM a cold run depends on what ran before it (the
host caches the disk), so with 3 modes give a multiple of 6 runs.
Python's standard library only.
"""

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time


def weightmap_json(weightmap: str, *args: str) -> dict:
    done = subprocess.run([weightmap, *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def set_cache(weightmap: str, path: str, cold: bool) -> float:
    """Evicts (cold) or prefetches (warm) the file; returns the share of it cached after."""
    state = weightmap_json(weightmap, "cache", path, "--evict" if cold else "--prefetch")
    return state["resident_bytes"] / max(1, state["bytes"])


def timed_load(weightmap: str, path: str, mode: str, extra: list[str]) -> tuple[float, dict]:
    start = time.monotonic()
    report = weightmap_json(weightmap, "load", path, "--mode", mode, *extra)
    return time.monotonic() - start, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--weightmap", default="build/weightmap")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--modes", default="auto,mmap,read")
    parser.add_argument("--caches", default="cold,warm")
    parser.add_argument("--load-args", default="",
                        help="more arguments for every `weightmap load`, e.g. --offload")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    modes = args.modes.split(",")
    orders = list(itertools.permutations(modes))

    print(f"weightmap load --mode M {args.load_args}; "
          f"{os.uname().nodename}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {args.runs} runs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for path in args.models:
        size = os.path.getsize(path)
        for cache in args.caches.split(","):
            cold = cache == "cold"
            wall = {mode: [] for mode in modes}
            inside = {mode: [] for mode in modes}
            worst_left = 0.0
            for run in range(args.runs):
                for mode in orders[run % len(orders)]:
                    share = set_cache(args.weightmap, path, cold)
                    if cold:
                        worst_left = max(worst_left, share)
                    elif share < 0.99:
                        print(f"  warning: only {share:.1%} of {path} cached before a warm run")
                    seconds, report = timed_load(args.weightmap, path, mode, args.load_args.split())
                    wall[mode].append(seconds)
                    inside[mode].append(report["seconds"] + report["touch_seconds"])
                    if args.verbose:
                        print(f"  run {run} {cache} {mode:5} {seconds:7.3f} s")
            best = min(statistics.median(wall[m]) for m in modes if m != "auto")
            print(f"{path} ({size / 2**30:.2f} GiB), {cache}"
                  + (f" (at most {worst_left:.1%} left cached after a drop)" if cold else ""))
            for mode in modes:
                median = statistics.median(wall[mode])
                print(f"  {mode:5} {median:7.3f} s wall ({statistics.median(inside[mode]):.3f} s "
                      f"load + touch), {median / best:5.2f}x the best fixed mode "
                      f"(runs: {' '.join(f'{x:.2f}' for x in wall[mode])})")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
