"""The benchmark harness: `python -m bench.run [--backend ...] [--quick] [--only ...] [--out ...]`.

It measures the floor first (ed25519, a bare aiohttp TLS round trip), then each scenario on
each backend with fresh node processes, prints one table and writes one JSON document. A
scenario that fails is recorded with its error and the run goes on; the exit code is 1 if
any failed. bench/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.catch_up import run_catch_up
from bench.counts import FULL, QUICK, Counts
from bench.fanout import run_fanout
from bench.floor import measure_floor
from bench.latency import run_latency
from bench.memory import run_memory
from bench.nodes import profile_into, py_spy
from bench.report import as_json, floor_rows, machine, rows_for, table
from bench.throughput import run_throughput

__all__ = ["SCENARIOS", "main"]

Scenario = Callable[[Path, str, Counts], Awaitable[dict]]
SCENARIOS: dict[str, Scenario] = {
    "latency": run_latency,
    "throughput": run_throughput,
    "catch_up": run_catch_up,
    "fanout": run_fanout,
    "memory": run_memory,
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="small counts: checks the harness in a few minutes")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios (default: all of {','.join(SCENARIOS)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--latency-messages", type=int, help="override the latency count (for smoke tests)")
    parser.add_argument("--warmup-messages", type=int, help="override the warm-up count (for smoke tests)")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' data dirs and logs")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record every node process with py-spy into DIR (speedscope files)")
    return parser


async def _run(args: argparse.Namespace) -> int:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    counts = QUICK if args.quick else FULL
    if args.latency_messages:
        counts = replace(counts, latency_messages=args.latency_messages)
    if args.warmup_messages is not None:
        counts = replace(counts, warmup_messages=args.warmup_messages)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if args.profile is not None:
        if py_spy() is None:
            print("--profile needs py-spy on PATH: pip install -e '.[bench]'", file=sys.stderr)
            return 2
        profile_into(args.profile)
    root = Path(tempfile.mkdtemp(prefix="agentnet-bench-"))
    document: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                      "quick": args.quick, "counts": asdict(counts),
                      "machine": machine(), "floor": {}, "results": {}, "errors": {}}
    failed = False
    try:
        print("floor ...", flush=True)
        document["floor"] = await measure_floor(root / "floor", quick=args.quick)
        for backend in backends:
            document["results"][backend] = {}
            for name in only:
                print(f"{backend} {name} ...", flush=True)
                started = time.monotonic()
                try:
                    result = await SCENARIOS[name](root / backend / name, backend, counts)
                except Exception as e:
                    failed = True
                    document["errors"][f"{backend}.{name}"] = f"{type(e).__name__}: {e}"
                    traceback.print_exc()
                    continue
                result["wall_s"] = time.monotonic() - started
                document["results"][backend][name] = result
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    rows = floor_rows(document["floor"])
    for backend, results in document["results"].items():
        rows += rows_for(backend, results, document["floor"])
    document["rows"] = as_json(rows)
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print()
    print(table(rows))
    for where, error in document["errors"].items():
        print(f"FAILED {where}: {error.splitlines()[0] if error else ''}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_run(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
