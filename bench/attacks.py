"""Honest latency under connection attacks: `python -m bench.attacks [--before REF] [--out PATH]`.

Two node processes, host A and member B, share a network; an agent on A posts one message
at a time and an agent on B receives each on its event stream, so every sample is one honest
cross-node message (A's delivery reaches B's federation listener over TLS). For each attack
the harness measures a baseline window, then the same window while an attacker process
(`bench.attacker`) works on B's federation listener, and reports p50/p99 of both with the
ratio attack ÷ baseline, B's CPU in each window and the attacker's own CPU.

The attacks (each lasts `WINDOW_S` plus the ramp-up before measuring):

* `slowloris`: 134 connections from one address, TLS completed, headers trickled a byte at
  a time and never finished;
* `idle`: 800 plain TCP connections from one address that never send a byte;
* `slowloris_spread` and `idle_spread`: the same from 134 and 800 distinct addresses, one
  connection each, so no per-address limit applies and only the timeouts and the global cap do.

`--before REF` also runs every attack against the nodes as of git REF (exported with
`git archive` into a temporary directory; nothing in the repository changes), and prints
both runs side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.agents import Poster, Receiver
from bench.network import open_network
from bench.nodes import REPO_ROOT, BenchCluster, BenchNode
from bench.report import machine
from bench.stats import summary_ms

__all__ = ["ATTACKS", "HonestPair", "finish", "honest_pair", "honest_window", "main"]

# The slowloris lasted 6 s; every window is that long, so each has a few hundred samples.
WINDOW_S = 6.0
# Pairs of windows (baseline, attacked) per attack, pooled: the machine's other load drifts.
ROUNDS = 3
# Time for the attacker to start and open its connections before the window starts.
RAMP_S = 1.5
# Each slowloris connection sends a byte this often: 1,340 bytes/s from 134 connections, each
# a TLS record the node decrypts and parses. Slower trickles cost the node next to nothing.
TRICKLE_S = 0.1
WARMUP_MESSAGES = 50
RECEIVE_TIMEOUT_S = 30.0
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "attacks.json"


@dataclass(frozen=True, slots=True)
class Attack:
    name: str
    mode: str
    connections: int
    sources: int


ATTACKS = [
    Attack("slowloris", "slowloris", 134, 1),
    Attack("idle", "idle", 800, 1),
    Attack("slowloris_spread", "slowloris", 134, 134),
    Attack("idle_spread", "idle", 800, 800),
]


async def honest_window(poster: Poster, receiver: Receiver, tag: str, seconds: float) -> list[int]:
    """Messages one after another for `seconds`; their latencies in ns."""
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        waiting = receiver.expect(tag, n)
        await poster.post(tag, n)
        await asyncio.wait_for(waiting, RECEIVE_TIMEOUT_S)
        n += 1
    return list(receiver.latencies[tag].values())


async def _attacked(b: BenchNode, poster: Poster, receiver: Receiver, attack: Attack, tag: str, seconds: float,
                    interval: float) -> tuple[list[int], float, dict]:
    """One attacked window: latencies, B's CPU seconds, and the attacker's own report."""
    attacker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.attacker", "--mode", attack.mode, "--target", f"127.0.0.1:{b.ports['federation']}",
        "--connections", str(attack.connections), "--sources", str(attack.sources),
        "--seconds", str(RAMP_S + seconds), "--interval", str(interval), cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.sleep(RAMP_S)
        cpu = b.cpu_seconds()
        latencies = await honest_window(poster, receiver, tag, seconds)
        node_cpu = b.cpu_seconds() - cpu
        out, _ = await asyncio.wait_for(attacker.communicate(), 60)
    finally:
        if attacker.returncode is None:
            attacker.kill()
            await attacker.wait()
    return latencies, node_cpu, json.loads(out.decode().strip().splitlines()[-1])


async def _measure(b: BenchNode, poster: Poster, receiver: Receiver, attack: Attack, rounds: int, seconds: float,
                   interval: float) -> dict:
    """`rounds` pairs of windows, baseline then attacked, pooled: other load on the machine
    drifts, and each attacked window is compared with the baseline just before it."""
    baseline, attacked, base_cpu, attack_cpu, reports = [], [], 0.0, 0.0, []
    for r in range(rounds):
        cpu = b.cpu_seconds()
        baseline += await honest_window(poster, receiver, f"{attack.name}-base{r}", seconds)
        base_cpu += b.cpu_seconds() - cpu
        latencies, node_cpu, report = await _attacked(b, poster, receiver, attack, f"{attack.name}-attack{r}",
                                                      seconds, interval)
        attacked += latencies
        attack_cpu += node_cpu
        reports.append(report)
        await asyncio.sleep(2.0)  # let the listener shed what the attack left before the next baseline
    base, during = summary_ms(baseline), summary_ms(attacked)
    return {
        "attack": {"mode": attack.mode, "connections": attack.connections, "sources": attack.sources},
        "baseline_ms": base, "latency_ms": during,
        "p50_ratio": during["p50"] / base["p50"], "p99_ratio": during["p99"] / base["p99"],
        "baseline_node_cpu_s": base_cpu, "node_cpu_s": attack_cpu,
        "attacker": {
            "cpu_s": sum(x["cpu_s"] for x in reports), "wall_s": sum(x["wall_s"] for x in reports),
            "attempts": sum(x["attempts"] for x in reports),
            "closed_by_server": sum(x["closed_by_server"] for x in reports),
            "rounds": reports,
        },
    }


@dataclass
class HonestPair:
    """Host A and member B on SQLite, an agent on A posting and one on B receiving, warmed up."""

    cluster: BenchCluster
    a: BenchNode
    b: BenchNode
    poster: Poster
    receiver: Receiver


@asynccontextmanager
async def honest_pair(root: Path, code_root: Path, *, federation_limits: bool = False) -> AsyncIterator[HonestPair]:
    async with BenchCluster(root, "sqlite", code_root=code_root, federation_limits=federation_limits) as cluster:
        a, b = await cluster.init_nodes("a.bench", "b.bench")
        await cluster.start(a, b)
        net = await open_network(a, [b], {a.server: ["author"], b.server: ["reader"]})
        assert cluster.http is not None
        poster = Poster(cluster.http, a.client_url, net.tokens[(a.server, "author")], net.messages_path)
        receiver = Receiver(cluster.http, b.client_url, net.tokens[(b.server, "reader")])
        await receiver.start()
        try:
            for n in range(WARMUP_MESSAGES):
                waiting = receiver.expect("warmup", n)
                await poster.post("warmup", n)
                await asyncio.wait_for(waiting, RECEIVE_TIMEOUT_S)
            yield HonestPair(cluster, a, b, poster, receiver)
        finally:
            await receiver.close()


async def run_attacks(root: Path, code_root: Path, attacks: list[Attack], *, rounds: int, seconds: float,
                      interval: float) -> dict:
    async with honest_pair(root, code_root) as pair:
        results = {}
        for attack in attacks:
            print(f"  {attack.name} ...", flush=True)
            results[attack.name] = await _measure(pair.b, pair.poster, pair.receiver, attack, rounds, seconds,
                                                  interval)
        return results


def _export(ref: str, into: Path) -> Path:
    """The tree of `ref`, as files, without touching the repository's worktrees or index."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO_ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _table(runs: dict[str, dict]) -> str:
    """One line per run and attack; `ended/tries` is the attacker's connections that the node
    closed or refused, out of those it tried; `lifetime` the median life of the ones it closed."""
    lines = [f"{'run':<8} {'attack':<17} {'p50 base':>8} {'attacked':>8} {'x':>5} {'p99 base':>8} {'attacked':>8} "
             f"{'x':>5} {'node cpu base/att':>17} {'attacker cpu':>12} {'ended/tries':>12} {'lifetime':>8}"]
    for run, results in runs.items():
        for name, r in results.items():
            atk = r["attacker"]
            lifetimes = [x["lifetime_p50_s"] for x in atk["rounds"] if x["lifetime_p50_s"] is not None]
            lifetime = f"{statistics.median(lifetimes):.2f}s" if lifetimes else "-"
            cpu = f"{r['baseline_node_cpu_s']:.2f}/{r['node_cpu_s']:.2f}s"
            ended = f"{atk['closed_by_server'] + sum(x['failed'] for x in atk['rounds'])}/{atk['attempts']}"
            lines.append(
                f"{run:<8} {name:<17} {r['baseline_ms']['p50']:>8.2f} {r['latency_ms']['p50']:>8.2f} "
                f"{r['p50_ratio']:>5.2f} {r['baseline_ms']['p99']:>8.2f} {r['latency_ms']['p99']:>8.2f} "
                f"{r['p99_ratio']:>5.2f} {cpu:>17} {atk['cpu_s']:>11.2f}s {ended:>12} {lifetime:>8}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    wanted = [a for a in ATTACKS if a.name in args.only.split(",")] if args.only else ATTACKS
    root = Path(tempfile.mkdtemp(prefix="agentnet-attacks-"))
    document: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                      "window_s": args.seconds, "rounds": args.rounds,
                      "trickle_interval_s": args.interval, "runs": {}}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True).stdout.strip()
        plan = [("guarded" if args.before else "current", REPO_ROOT, commit + ("+" if _dirty() else ""))]
        if args.before:
            plan.insert(0, ("before", _export(args.before, root / "before-code"), args.before))
        for run, code_root, ref in plan:
            print(f"{run} ({ref}) ...", flush=True)
            document["runs"][run] = {"ref": ref, "results": await run_attacks(
                root / run, code_root, wanted, rounds=args.rounds, seconds=args.seconds, interval=args.interval)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return finish(document, _table({run: d["results"] for run, d in document["runs"].items()}), args.out)


def finish(document: dict, table: str, out: Path) -> int:
    """Stamp, print the table, and write the run's JSON."""
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print()
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def _dirty() -> bool:
    return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True).stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REF", help="also run every attack against the nodes at git REF")
    parser.add_argument("--only", help=f"comma-separated attacks (default: all of {','.join(a.name for a in ATTACKS)})")
    parser.add_argument("--seconds", type=float, default=WINDOW_S, help="length of each measured window")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="baseline and attacked windows per attack")
    parser.add_argument("--interval", type=float, default=TRICKLE_S,
                        help="seconds between the bytes of each slowloris connection")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
