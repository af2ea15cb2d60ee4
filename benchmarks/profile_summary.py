"""Summarise a py-spy raw (folded) profile of the worker thread: where its time goes.

Usage: py-spy record --format raw -t -o prof.txt -- python benchmarks/bench_throughput.py \
           --trials 1 --modes 10
       python benchmarks/profile_summary.py prof.txt [--top 25]
Only stacks of the worker thread (under `Worker.run`) count. Prints the share of its samples
spent in each function including callees (inclusive), and in the function itself (self).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^:()]*?)(?::\d+)?\)$")


def _frame_name(frame: str) -> str:
    """`func (path/file.py:12)` -> `func (file.py)`: lines of one function add up."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def summarise(path: Path, marker: str) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if marker not in stack:
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";")[1:]]
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    return total, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--marker", default="run (entity_sync/runtime/consumer.py")
    args = parser.parse_args()
    total, inclusive, own = summarise(args.profile, args.marker)
    print(f"worker thread samples: {total}")
    print("inclusive:")
    for name, n in inclusive.most_common(args.top):
        print(f"  {n / total:6.1%}  {name}")
    print("self:")
    for name, n in own.most_common(args.top):
        print(f"  {n / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
