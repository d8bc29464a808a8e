"""Body floods against the federation listener: `python -m bench.parse_floods [--before REF]`.

Issue 12, finding 3: a 7.9 MiB `POST /invites` of 1.3 million integers was parsed for 6.7 s
before it was refused, and an honest message took up to 7.8 s to cross meanwhile. This bench
runs two node processes, A (host) and B (member), and for each flood (`bench.flooder`, two
requests in flight at a time, at the lowest CPU priority) measures, in a baseline window and
then in a flooded one:

* how long B takes to answer `GET /healthz` on its admin listener, every 10 ms: the same event
  loop serves B's federation listener, so the slowest answer is the longest B's loop was held;
* the honest cross-node latency of a message from A's agent to B's (as `bench.attacks`).

The floods: `invites` (self-certified, so open to anyone; 7.9 MiB) and `values` (a
transaction signed with A's own key, so authenticated; 2 MiB of a million integers). The
`current` run lifts the per-peer rate limits (as every bench does, `bench.nodes`), so every
flooded body reaches the parser: the worst case; the `limited` run keeps the node's default
limits, as deployed. `--before REF` runs the same (limits lifted) against the code of REF.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.attacks import HonestPair, _dirty, _export, finish, honest_pair, honest_window
from bench.nodes import REPO_ROOT, BenchNode
from bench.report import machine
from bench.stats import summary_ms

__all__ = ["main"]

FLOODS = ("invites", "values")
WINDOW_S = 6.0
ROUNDS = 2
PROBE_EVERY_S = 0.01
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "parse_floods.json"


async def _probe(http: aiohttp.ClientSession, node: BenchNode, seconds: float) -> list[int]:
    """`GET /healthz` on the node's admin listener every 10 ms; each answer's time in ns."""
    samples, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter_ns()
        async with http.get(node.admin_url + "/healthz") as resp:
            await resp.read()
        samples.append(time.perf_counter_ns() - started)
        await asyncio.sleep(PROBE_EVERY_S)
    return samples


async def _windows(pair: HonestPair, flood: str | None, tag: str, seconds: float) -> tuple[list[int], list[int],
                                                                                     dict | None]:
    cluster, a, b = pair.cluster, pair.a, pair.b
    assert cluster.http is not None
    flooder = None
    if flood is not None:
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.flooder", "--mode", flood, "--endpoint", b.endpoint, "--server", b.server,
            "--as", a.server, "--key", str(a.data_dir / "signing.key"), "--ca", str(cluster.bundle),
            "--seconds", str(seconds + 1), cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(0.5)
    try:
        probe = asyncio.create_task(_probe(cluster.http, b, seconds))
        latencies = await honest_window(pair.poster, pair.receiver, tag, seconds)
        holds = await probe
        report = None
        if flooder is not None:
            out, _ = await asyncio.wait_for(flooder.communicate(), 120)
            report = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        if flooder is not None and flooder.returncode is None:
            flooder.kill()
            await flooder.wait()
    return latencies, holds, report


async def run_floods(root: Path, code_root: Path, floods: list[str], *, rounds: int, seconds: float,
                     federation_limits: bool = False) -> dict:
    async with honest_pair(root, code_root, federation_limits=federation_limits) as pair:
        results = {}
        for flood in floods:
            print(f"  {flood} ...", flush=True)
            base_lat: list[int] = []
            base_hold: list[int] = []
            flood_lat: list[int] = []
            flood_hold: list[int] = []
            reports = []
            for r in range(rounds):
                lat, hold, _ = await _windows(pair, None, f"{flood}-b{r}", seconds)
                base_lat, base_hold = base_lat + lat, base_hold + hold
                lat, hold, report = await _windows(pair, flood, f"{flood}-f{r}", seconds)
                flood_lat, flood_hold = flood_lat + lat, flood_hold + hold
                reports.append(report)
                await asyncio.sleep(1.0)
            base, during = summary_ms(base_lat), summary_ms(flood_lat)
            results[flood] = {
                "baseline_ms": base, "latency_ms": during, "p50_ratio": during["p50"] / base["p50"],
                "p99_ratio": during["p99"] / base["p99"],
                "probe_baseline_ms": summary_ms(base_hold), "probe_flooded_ms": summary_ms(flood_hold),
                "flooder": reports,
            }
        return results


def _table(runs: dict[str, dict]) -> str:
    lines = [f"{'run':<8} {'flood':<8} {'msg p50 base':>12} {'flooded':>8} {'x':>5} {'msg p99 base':>12} "
             f"{'flooded':>8} {'x':>5} {'loop max base':>13} {'flooded':>8} {'answers':>24}"]
    for run, results in runs.items():
        for name, r in results.items():
            answers: dict[str, int] = {}
            for report in r["flooder"]:
                for status, n in report["answers"].items():
                    answers[status] = answers.get(status, 0) + n
            lines.append(
                f"{run:<8} {name:<8} {r['baseline_ms']['p50']:>12.2f} {r['latency_ms']['p50']:>8.2f} "
                f"{r['p50_ratio']:>5.2f} {r['baseline_ms']['p99']:>12.2f} {r['latency_ms']['p99']:>8.2f} "
                f"{r['p99_ratio']:>5.2f} {r['probe_baseline_ms']['max']:>13.1f} {r['probe_flooded_ms']['max']:>8.1f} "
                f"{json.dumps(answers, sort_keys=True):>24}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    floods = args.only.split(",") if args.only else list(FLOODS)
    root = Path(tempfile.mkdtemp(prefix="agentnet-floods-"))
    document: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                      "window_s": args.seconds, "rounds": args.rounds, "runs": {}}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True).stdout.strip()
        ref = commit + ("+" if _dirty() else "")
        plan = [("current", REPO_ROOT, ref, False), ("limited", REPO_ROOT, ref, True)]
        if args.before:
            plan.insert(0, ("before", _export(args.before, root / "before-code"), args.before, False))
        for run, code_root, ref, limited in plan:
            print(f"{run} ({ref}) ...", flush=True)
            document["runs"][run] = {"ref": ref, "federation_limits": limited, "results": await run_floods(
                root / run, code_root, floods, rounds=args.rounds, seconds=args.seconds, federation_limits=limited)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return finish(document, _table({run: d["results"] for run, d in document["runs"].items()}), args.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parse_floods", description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="REF", help="also run against the code of this git ref")
    parser.add_argument("--only", help=f"comma-separated floods, of {', '.join(FLOODS)}")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=float, default=WINDOW_S)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
