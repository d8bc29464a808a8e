"""`python -m bench.soak --cycles 100 --backend sqlite`: the fault-injection soak (issue 12).

Three node processes (host H, members M1, M2), a fault proxy on each directed link, agents on
every node posting steadily with idempotent retries, and one fault per cycle (partitions,
delays, kill -9 and restart, pause, clock steps; `bench.soak_faults`). Afterwards the posting
stops, the soak waits (bounded) until every node agrees with the host, and checks every node's
history (`bench.soak_check`). It prints the figures and writes them as JSON; the exit code
is 1 if a safety property failed (lost, duplicated, reordered, diverged, "failed" shown,
no convergence), else 0. bench/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.nodes import BenchNode
from bench.report import machine
from bench.soak_check import NodeCopy, Seen, check_history
from bench.soak_db import read_chain
from bench.soak_faults import KINDS, Conditions, FaultRunner, plan
from bench.soak_monitor import PeerWatch, error_answers, get_json
from bench.soak_report import STALL_TARGET_S, partition_retries, skew_errors, table, targets
from bench.soak_topology import SoakTopology, soak_topology
from bench.soak_workload import Author

__all__ = ["main"]

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "results"
WARM_UP_S = 2.0
CONVERGED_POLL_S = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, help="names the run's faults (default: drawn, and printed)")
    parser.add_argument("--rate", type=float, default=10.0, help="posts per second, all agents together")
    parser.add_argument("--agents-per-node", type=int, default=2)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"fault kinds to deal (default {','.join(KINDS)})")
    parser.add_argument("--hold", default="1,4", help="how long a fault lasts, seconds: MIN,MAX")
    parser.add_argument("--gap", default="1,2", help="healthy time after each cycle, seconds: MIN,MAX")
    parser.add_argument("--overlap", type=float, default=0.3,
                        help="share of cycles with a second fault of the other family at the same time")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="after the last cycle, how long the posts under way may take to be acknowledged")
    parser.add_argument("--converge-timeout", type=float, default=300.0,
                        help="how long the nodes may take to agree once the posting stopped")
    parser.add_argument("--out", type=Path, help="where the JSON goes (default bench/results/soak-BACKEND.json)")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' data dirs and logs")
    return parser


def _pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


async def _soak(args: argparse.Namespace, root: Path, document: dict) -> bool:
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    async with soak_topology(root, args.backend, agents_per_node=args.agents_per_node) as topo, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        cycles = plan(args.seed, args.cycles, host=topo.host, members=topo.members, kinds=kinds,
                      hold_s=_pair(args.hold), gap_s=_pair(args.gap), overlap=args.overlap)
        conditions = Conditions({s: 0 for s in topo.nodes}, topo.proxies)
        runner = FaultRunner(topo.nodes, conditions, snapshot=lambda: error_answers(http, topo.nodes))
        started = time.monotonic()
        watch = PeerWatch(http, topo.nodes, topo.links, conditions, started=started, threshold_s=STALL_TARGET_S)
        run_id = secrets.token_hex(3)
        authors = [Author(http, topo.nodes[s], h, topo.network.tokens[(s, h)], topo.network, run_id,
                          random.Random(f"{args.seed}-{s}-{h}"))
                   for s, handles in topo.authors.items() for h in handles]
        stop_posting, stop_watching = asyncio.Event(), asyncio.Event()
        interval = len(authors) / args.rate
        posting = [asyncio.create_task(a.run(stop_posting, interval)) for a in authors]
        watching = asyncio.create_task(watch.run(stop_watching))
        last_heal = started
        try:
            await asyncio.sleep(WARM_UP_S)
            for cycle in cycles:
                print(f"cycle {cycle.number + 1}/{len(cycles)} t={time.monotonic() - started:.0f}s: "
                      f"{cycle.describe()}", flush=True)
                last_heal = await runner.run_cycle(cycle)
                await asyncio.sleep(cycle.gap_s)
        finally:
            await runner.heal_everything()
            stop_posting.set()
            drained = await _drain(posting, args.drain_timeout)
        print(f"posting stopped; waiting for the nodes to agree (up to {args.converge_timeout:.0f} s)", flush=True)
        converged_at = await _converged(http, topo, args.converge_timeout)
        stop_watching.set()
        await watching
        copies = {server: await _copy(http, topo, server) for server in topo.nodes}
        acks = sorted((ack for a in authors for ack in a.acks), key=lambda ack: ack.acked_at)
        refused = [r for a in authors for r in a.refused]
        abandoned = [b for a in authors for b in a.abandoned]
        history = check_history(acks, copies, host=topo.host,
                                unacknowledged_ok=[*abandoned, *(r.body for r in refused)])
        figures = {
            **asdict(history),
            "convergence_s": round(converged_at - last_heal, 2) if converged_at is not None else None,
            "longest_stall_on_healed_link_s": watch.longest.seconds if watch.longest else 0.0,
            "longest_stall": asdict(watch.longest) if watch.longest else None,
            "stalls_over_target": len(watch.stalls),
            "retries_per_peer_per_minute_during_partitions": partition_retries(runner.windows, topo.proxies),
            "error_answers_per_minute_during_skew": skew_errors(
                runner.windows, {topo.host: len(topo.members), **{m: 1 for m in topo.members}}),
            "refused": len(refused), "abandoned": len(abandoned), "drained": drained,
            "post_attempts": sum(a.attempts for a in authors), "replayed": sum(k.replayed for k in acks),
            "peer_samples": watch.samples,
        }
        checks = targets(figures)
        document.update({
            "figures": figures,
            "targets": [asdict(t) for t in checks],
            "stalls": [asdict(s) for s in watch.stalls],
            "refusals": [asdict(r) for r in refused[:20]],
            "faults": [{"cycle": w.fault.cycle, "kind": w.fault.kind, "what": w.fault.describe(),
                        "start_s": round(w.start - started, 2), "end_s": round(w.end - started, 2)}
                       for w in runner.windows],
            "proxies": {p.name: asdict(p.stats()) for p in topo.proxies.values()},
            "heads": {s: {"seq": c.chain.head_seq, "hash": c.chain.head_hash} for s, c in copies.items()},
        })
        print()
        print(table(figures, checks))
        return all(t.met for t in checks if t.safety)


async def _drain(posting: list[asyncio.Task], timeout: float) -> bool:
    """Let the posts under way be acknowledged; past `timeout`, give up on the rest."""
    done, pending = await asyncio.wait(posting, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*posting, return_exceptions=True)
    for task in done:
        if (error := task.exception()) is not None:
            raise error
    return not pending


async def _converged(http: aiohttp.ClientSession, topo: SoakTopology, timeout: float) -> float | None:
    """When every node holds the host's head, nothing is pending at a member and no node has
    rows queued for a peer; None if that did not happen within `timeout`."""
    deadline = time.monotonic() + timeout
    path = f"/v1/networks/{topo.network.name}"
    while time.monotonic() < deadline:
        try:
            networks = [await get_json(http, n, path, timeout=5) for n in topo.nodes.values()]
            peers = [await get_json(http, n, "/v1/peers", timeout=5) for n in topo.nodes.values()]
        except (aiohttp.ClientError, TimeoutError):
            networks, peers = [], []
        if (networks and len({n["head_seq"] for n in networks}) == 1
                and all(n["pending_events"] == 0 for n in networks)
                and all(p["queue_depth"] == 0 for page in peers for p in page["items"])):
            return time.monotonic()
        await asyncio.sleep(CONVERGED_POLL_S)
    return None


async def _copy(http: aiohttp.ClientSession, topo: SoakTopology, server: str) -> NodeCopy:
    """The thread as each of the node's agents reads it (each sees its own posts' delivery
    state), and the node's chain."""
    node = topo.nodes[server]
    seen: dict[str, Seen] = {}
    for handle in topo.authors[server]:
        me = f"agent:{handle}@{server}"
        for m in await _read_thread(http, node, topo.network.tokens[(server, handle)], topo.network.messages_path):
            if m["id"] not in seen or m["sender"] == me:
                seen[m["id"]] = Seen(m["id"], m["seq"], m["body"], m["sender"],
                                     m["delivery"] if m["sender"] == me else None)
    return NodeCopy(server, tuple(seen.values()), await read_chain(node, topo.network.name, topo.host))


async def _read_thread(http: aiohttp.ClientSession, node: BenchNode, token: str, path: str) -> list[dict]:
    messages, after = [], "0"
    while True:
        page = await get_json(http, node, f"{path}?after={after}&limit=200", admin=False, token=token, timeout=30)
        messages += page["items"]
        if page["next_cursor"] is None:
            return messages
        after = page["next_cursor"]


async def _run(args: argparse.Namespace) -> int:
    args.backend = "postgresql" if args.backend == "postgres" else args.backend
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    out = args.out or DEFAULT_OUT_DIR / f"soak-{args.backend}.json"
    root = Path(tempfile.mkdtemp(prefix="agentnet-soak-"))
    print(f"soak: {args.cycles} cycles on {args.backend}, seed {args.seed}, {args.rate:g} posts/s; nodes in {root}",
          flush=True)
    document: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "backend": args.backend,
                      "cycles": args.cycles, "seed": args.seed, "rate": args.rate, "kinds": args.kinds,
                      "hold_s": args.hold, "gap_s": args.gap, "overlap": args.overlap,
                      "machine": machine()}
    started = time.monotonic()
    try:
        safe = await _soak(args, root, document)
    except Exception as e:
        traceback.print_exc()
        document["error"] = f"{type(e).__name__}: {e}"
        safe = False
    finally:
        document["wall_s"] = round(time.monotonic() - started, 1)
        document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        if args.keep or "error" in document:
            print(f"kept {root} (node data dirs and logs)")
        else:
            shutil.rmtree(root, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out}; {'safe' if safe else 'UNSAFE: a safety property failed'}")
    return 0 if safe else 1


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_run(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
