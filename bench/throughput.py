"""Throughput: concurrent agents on node A post as fast as the node answers; one agent on B
receives every message on its event stream.

* messages_per_s: messages / (first post sent -> last message received on B), end to end;
* accepted_per_s: messages / (first post sent -> last post answered by A);
* cpu_s_per_1000: utime+stime of each node process over the run, per 1,000 messages (and
  the harness's own, to show it was not the bottleneck);
* latency_ms: the per-message latency under this load.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bench.agents import Poster, Receiver
from bench.counts import Counts
from bench.network import open_network
from bench.nodes import BenchCluster, BenchNode
from bench.stats import summary_ms

__all__ = ["post_concurrently", "run_throughput"]


async def post_concurrently(posters: list[Poster], tag: str, total: int) -> None:
    """`total` messages numbered 0..total-1, split across the posters, each posting in turn."""
    async def worker(index: int) -> None:
        for n in range(index, total, len(posters)):
            await posters[index].post(tag, n)

    await asyncio.gather(*(worker(i) for i in range(len(posters))))


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def run_throughput(root: Path, backend: str, counts: Counts) -> dict:
    async with BenchCluster(root, backend) as cluster:
        a, b = await cluster.init_nodes("a.bench", "b.bench")
        await cluster.start(a, b)
        senders = [f"sender{i}" for i in range(counts.throughput_agents)]
        net = await open_network(a, [b], {a.server: senders, b.server: ["reader"]})
        assert cluster.http is not None
        posters = [Poster(cluster.http, a.client_url, net.tokens[(a.server, s)], net.messages_path) for s in senders]
        receiver = Receiver(cluster.http, b.client_url, net.tokens[(b.server, "reader")])
        await receiver.start()
        try:
            await post_concurrently(posters, "warm", counts.warmup_messages * 4)
            await asyncio.wait_for(receiver.expect_count("warm", counts.warmup_messages * 4), 60)
            total = counts.throughput_messages
            nodes: list[BenchNode] = [a, b]
            cpu_before = {n.server: n.cpu_seconds() for n in nodes}
            self_before = _self_cpu()
            all_in = receiver.expect_count("tput", total)
            started = time.monotonic_ns()
            await post_concurrently(posters, "tput", total)
            accepted = time.monotonic_ns()
            await asyncio.wait_for(all_in, max(120.0, total / 5))  # generous: a slow node is a figure, not a failure
            finished = max(receiver.arrivals["tput"].values())
            cpu = {n.server: n.cpu_seconds() - cpu_before[n.server] for n in nodes}
            harness_cpu = _self_cpu() - self_before
        finally:
            await receiver.close()
        return {
            "messages": total,
            "agents": len(posters),
            "messages_per_s": total / ((finished - started) / 1e9),
            "accepted_per_s": total / ((accepted - started) / 1e9),
            "cpu_s_per_1000": {"sender_node": cpu[a.server] / total * 1000,
                               "receiver_node": cpu[b.server] / total * 1000,
                               "harness": harness_cpu / total * 1000},
            "latency_ms": summary_ms(list(receiver.latencies["tput"].values())),
        }
