"""Fan-out: one sender on the host posts messages one after another (each post awaited, none
waits for delivery) into a network with K member nodes; an agent on every member receives.

* messages_per_s: messages / (first post sent -> last message received by the slowest member);
* last_node_latency_ms: for each message, the latency to the member that got it last;
* host_cpu_s_per_1000: the host's CPU per 1,000 messages (it signs once and sends K times).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.agents import Poster, Receiver
from bench.counts import Counts
from bench.network import open_network
from bench.nodes import BenchCluster
from bench.stats import summary_ms

__all__ = ["run_fanout"]


async def run_fanout(root: Path, backend: str, counts: Counts) -> dict:
    async with BenchCluster(root, backend) as cluster:
        host, *members = await cluster.init_nodes(
            "h.bench", *(f"m{i}.bench" for i in range(1, counts.fanout_members + 1)))
        await cluster.start(host, *members)
        agents = {host.server: ["sender"]} | {m.server: ["reader"] for m in members}
        net = await open_network(host, members, agents)
        assert cluster.http is not None
        poster = Poster(cluster.http, host.client_url, net.tokens[(host.server, "sender")], net.messages_path)
        receivers = [Receiver(cluster.http, m.client_url, net.tokens[(m.server, "reader")]) for m in members]
        await asyncio.gather(*(r.start() for r in receivers))
        try:
            for n in range(counts.warmup_messages):
                await poster.post("warm", n)
            await asyncio.wait_for(asyncio.gather(*(r.expect_count("warm", counts.warmup_messages)
                                                    for r in receivers)), 60)
            total = counts.fanout_messages
            all_in = asyncio.gather(*(r.expect_count("fan", total) for r in receivers))
            cpu_before = host.cpu_seconds()
            started = time.monotonic_ns()
            for n in range(total):
                await poster.post("fan", n)
            await asyncio.wait_for(all_in, max(120.0, total * 2.0))
            cpu = host.cpu_seconds() - cpu_before
            finished = max(max(r.arrivals["fan"].values()) for r in receivers)
            last = [max(r.latencies["fan"][n] for r in receivers) for n in range(total)]
        finally:
            await asyncio.gather(*(r.close() for r in receivers))
        return {
            "members": len(members),
            "messages": total,
            "messages_per_s": total / ((finished - started) / 1e9),
            "last_node_latency_ms": summary_ms(last),
            "host_cpu_s_per_1000": cpu / total * 1000,
        }
