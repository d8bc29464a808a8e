"""Catch-up: member B is stopped (SIGTERM) while agents on host A post N messages into one
network; then B is started again and the harness polls B's admin API until B's head_seq
equals A's.

* seconds_from_ready: B's listener answering -> converged (the catch-up itself);
* seconds_from_spawn: `agentnet run` spawned -> converged (adds the process start);
* events_per_s: N / seconds_from_ready.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.agents import Poster
from bench.counts import Counts
from bench.network import open_network
from bench.nodes import BenchCluster, NodeFailed
from bench.throughput import post_concurrently

__all__ = ["run_catch_up"]

POLL_S = 0.02


async def run_catch_up(root: Path, backend: str, counts: Counts) -> dict:
    async with BenchCluster(root, backend) as cluster:
        a, b = await cluster.init_nodes("a.bench", "b.bench")
        await cluster.start(a, b)
        senders = [f"sender{i}" for i in range(counts.throughput_agents)]
        net = await open_network(a, [b], {a.server: senders, b.server: ["reader"]})
        assert cluster.http is not None
        posters = [Poster(cluster.http, a.client_url, net.tokens[(a.server, s)], net.messages_path) for s in senders]
        await b.stop()
        filling = time.monotonic()
        await post_concurrently(posters, "catchup", counts.catch_up_events)
        fill_s = time.monotonic() - filling
        target = (await a.admin("GET", f"/v1/networks/{net.name}"))["head_seq"]
        before = None
        spawned = await b.start()
        ready = time.monotonic()
        cpu_before = b.cpu_seconds()
        before = (await b.admin("GET", f"/v1/networks/{net.name}"))["head_seq"]
        deadline = ready + max(300.0, counts.catch_up_events / 5)
        while (head := (await b.admin("GET", f"/v1/networks/{net.name}"))["head_seq"]) < target:
            if time.monotonic() > deadline:
                raise NodeFailed(f"b.bench stuck at head {head} of {target}" + b.log_tail())
            await asyncio.sleep(POLL_S)
        converged = time.monotonic()
        cpu = b.cpu_seconds() - cpu_before
        events = target - before
        return {
            "events": events,
            "fill_s": fill_s,
            "seconds_from_ready": converged - ready,
            "seconds_from_spawn": converged - spawned,
            "events_per_s": events / (converged - ready),
            "member_cpu_s_per_1000": cpu / events * 1000,
        }
