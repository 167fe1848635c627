#!/usr/bin/python3
"""Turns `weightmap bench --json` output into the Markdown tables the README shows.

    weightmap bench model.safetensors --cold --json > st.json
    weightmap bench model.gguf --cold --json > gguf.json
    scripts/bench-table.py st.json gguf.json

Each FILE holds one bench's JSON object (or several, one per line). The output: what was
measured where and when (machine, date, load average, all recorded by the bench itself), then
one table of floors and one of loading modes per temperature (warm, and cold with --cold),
one column per bench. A cell is the median time, then the ratios that apply to the row:
`0.85x base` is the row's time over the baseline row of the same kind and temperature (the
stable-diffusion.cpp-style loader; below 1 is faster), `1.10x fill` its time over the fresh
buffer fill floor (conversions into new buffers), `1.2x read` its bandwidth against read()
into a new buffer of the same temperature (above 1 is faster). Python standard library only.
"""

import argparse
import json
import sys
from pathlib import Path


def human_bytes(n):
    value, unit = float(n), 0
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and unit + 1 < len(units):
        value /= 1024
        unit += 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def duration(seconds):
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.01 else f"{seconds:.3f} s"


def loads(values):
    return "unknown" if not values else " / ".join(f"{v:.2f}" for v in values)


def read_benches(paths):
    benches = []
    for path in paths:
        text = Path(path).read_text()
        decoder = json.JSONDecoder()
        at = 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at == len(text):
                break
            try:
                bench, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError as e:
                sys.exit(f"bench-table: {path}: not weightmap bench --json output: {e}")
            if not isinstance(bench, dict) or "modes" not in bench or "floors" not in bench:
                sys.exit(f"bench-table: {path}: not weightmap bench --json output (no modes)")
            bench["_source"] = path
            benches.append(bench)
    if not benches:
        sys.exit("bench-table: no bench output in " + ", ".join(paths))
    return benches


def column_names(benches):
    names = [f"{b['format']} {human_bytes(b['tensor_bytes'])}" for b in benches]
    # Two benches of the same format and size: tell them apart by their files.
    return [
        f"{name} ({Path(bench['_source']).name})" if names.count(name) > 1 else name
        for name, bench in zip(names, benches)
    ]


def machine_text(machine):
    if not machine:
        return "unknown machine"
    return (
        f"{machine.get('cpu') or 'unknown CPU'}, {machine.get('cores', '?')} cores, "
        f"{human_bytes(machine.get('memory_bytes', 0))} RAM, Linux {machine.get('kernel') or '?'}, "
        f"transparent huge pages {machine.get('transparent_huge_pages') or 'unknown'}"
    )


def describe(benches, columns):
    lines = []
    machines = {machine_text(b.get("machine")) for b in benches}
    if len(machines) == 1:
        lines.append(f"Machine: {machines.pop()}.")
    for bench, column in zip(benches, columns):
        load = bench.get("load_average") or {}
        line = (
            f"- {column}: `{Path(bench['path']).name}`, {bench['tensors']} tensors; "
            f"copy rows on the first {bench['selected_tensors']} tensors "
            f"({human_bytes(bench['selected_bytes'])}); {bench['threads']} threads; medians of "
            f"{bench['runs']} runs; started {bench.get('date', '?')}; load average "
            f"{loads(load.get('start'))} at the start, {loads(load.get('end'))} at the end"
        )
        if len(machines) > 0:
            line += f"; {machine_text(bench.get('machine'))}"
        if bench.get("cold"):
            line += (
                f"; cold rows: {bench.get('cold_drops', 0)} drops, at most "
                f"{human_bytes(bench.get('cold_resident_after_drop_bytes', 0))} left cached"
            )
        lines.append(line)
        for note in bench.get("notes", []):
            lines.append(f"  - note: {note}")
    return lines


def cell(row):
    if row is None:
        return "-"
    parts = [duration(row["seconds"])]
    if row.get("kind") == "mapped" and row.get("cold") and row["seconds"] > 0:
        # Populating a cold mapping reads the whole file: its rate is the figure.
        parts.append(f"{row['bytes'] / row['seconds'] / 1e9:.2f} GB/s")
    elif "ratio_to_open" in row:
        parts.append(f"{row['ratio_to_open']:.2f}x open")
    if "time_vs_baseline" in row and not row.get("baseline"):
        parts.append(f"{row['time_vs_baseline']:.2f}x base")
    if "time_vs_fill" in row:
        parts.append(f"{row['time_vs_fill']:.2f}x fill")
    if "ratio_to_read_new" in row:
        parts.append(f"{row['ratio_to_read_new']:.2f}x read")
    return ", ".join(parts)


def table(title, key, benches, columns, keep):
    """One Markdown table: a row per bench row name (in first-seen order) that `keep` accepts."""
    names = []
    for bench in benches:
        for row in bench[key]:
            if keep(row) and row["name"] not in names:
                names.append(row["name"])
    if not names:
        return []
    lines = [f"| {title} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in names:
        cells = []
        for bench in benches:
            found = next((r for r in bench[key] if r["name"] == name), None)
            cells.append(cell(found))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="weightmap bench --json output")
    args = parser.parse_args()
    benches = read_benches(args.files)
    columns = column_names(benches)
    out = describe(benches, columns) + [""]
    out += table("floor", "floors", benches, columns, lambda r: True)
    out += table("mode, warm", "modes", benches, columns, lambda r: not r.get("cold"))
    out += table("mode, cold", "modes", benches, columns, lambda r: r.get("cold"))
    print("\n".join(out).rstrip())


if __name__ == "__main__":
    main()
