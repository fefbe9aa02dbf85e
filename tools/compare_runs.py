"""Compare the numbers of two run or sweep directories (issue 9's equality check of a restructure).

Usage: python tools/compare_runs.py BEFORE_DIR AFTER_DIR
Compares metrics.json, table.json and points/*/metrics.json (recursively under each directory) value
by value, exactly, skipping what legitimately differs between two runs: timings, versions, commit,
paths. Prints every difference and a summary line; exit 1 when any number differs.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

SKIP = re.compile(r"seconds|time|version|commit|path|_dir$|^run_dir$|host|date|started|finished|argv|"
                  r"^threads$|thread_budget")
NAMES = ("metrics.json", "table.json")


def walk(a, b, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if SKIP.search(str(k)):
                continue
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'after' if k not in a else 'before'}")
                continue
            walk(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: length {len(a)} -> {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{where}[{i}]", out)
    elif a != b and not (a != a and b != b):  # NaN == NaN
        out.append(f"{where}: {a!r} -> {b!r}")


def main(before: str, after: str) -> int:
    b0, a0 = Path(before), Path(after)
    files = sorted(p.relative_to(b0) for p in b0.rglob("*.json") if p.name in NAMES)
    diffs: list[str] = []
    for rel in files:
        if not (a0 / rel).exists():
            diffs.append(f"{rel}: missing after")
            continue
        walk(json.loads((b0 / rel).read_text()), json.loads((a0 / rel).read_text()), str(rel), diffs)
    for d in diffs:
        print(d)
    print(f"{before} vs {after}: {len(files)} files compared, {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
