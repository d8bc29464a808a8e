"""Where a node's time went: `python -m bench.profile_summary FILE.speedscope.json [--top N]`.

Reads a py-spy profile written by `python -m bench.run --profile DIR` and prints, for the
busiest functions, the share of samples they were on the stack (inclusive) and at its top
(self). py-spy samples a thread only while it runs (no `--idle`), so the shares are of the
time the node was busy, and the sample count over the rate is its busy time.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

__all__ = ["main", "summarize"]

def summarize(document: dict) -> tuple[float, Counter, Counter]:
    """(total weight, inclusive weights, self weights) over every sampled profile in `document`."""
    frames = document["shared"]["frames"]
    names = [f"{f['name']} ({Path(f.get('file') or '?').name}:{f.get('line')})" for f in frames]
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for profile in document["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=False):
            if not stack:
                continue
            total += weight
            own[names[stack[-1]]] += weight
            for name in {names[i] for i in stack}:
                inclusive[name] += weight
    return total, inclusive, own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary", description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    total, inclusive, own = summarize(json.loads(args.profile.read_text()))
    if not total:
        print(f"{args.profile.name}: no samples")
        return 1
    print(f"{args.profile.name}: {total:.2f} s of samples (py-spy weighs each by its interval)")
    print("inclusive (share of samples with the function on the stack):")
    for name, weight in inclusive.most_common(args.top):
        print(f"  {weight / total:6.1%}  {name}")
    print("self (share of samples with the function at the top of the stack):")
    for name, weight in own.most_common(args.top):
        print(f"  {weight / total:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
