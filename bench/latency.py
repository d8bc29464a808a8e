"""Latency: messages posted one after another by an agent through the client API, each timed
until an agent on another node receives it on its event stream. The next message is posted
only once the previous one arrived, so every sample is an unloaded end-to-end latency.

Two paths, in one network of three nodes (host H, members M1 and M2):

* host_to_member: author on H, reader on M1 (H sequences it and sends it to M1);
* member_to_member: author on M1, reader on M2 (M1 submits to H, H sequences and sends to M2).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bench.agents import Poster, Receiver
from bench.counts import Counts
from bench.network import open_network
from bench.nodes import BenchCluster
from bench.stats import summary_ms

__all__ = ["run_latency"]

RECEIVE_TIMEOUT_S = 30.0


async def _path(http: aiohttp.ClientSession, poster: Poster, receiver: Receiver, tag: str, counts: Counts) -> dict:
    for n in range(counts.warmup_messages):
        waiting = receiver.expect(f"{tag}w", n)
        await poster.post(f"{tag}w", n)
        await asyncio.wait_for(waiting, RECEIVE_TIMEOUT_S)
    for n in range(counts.latency_messages):
        waiting = receiver.expect(tag, n)
        await poster.post(tag, n)
        await asyncio.wait_for(waiting, RECEIVE_TIMEOUT_S)
    return summary_ms(list(receiver.latencies[tag].values()))


async def run_latency(root: Path, backend: str, counts: Counts) -> dict:
    async with BenchCluster(root, backend) as cluster:
        h, m1, m2 = await cluster.init_nodes("h.bench", "m1.bench", "m2.bench")
        await cluster.start(h, m1, m2)
        net = await open_network(h, [m1, m2], {h.server: ["author"], m1.server: ["author", "reader"],
                                               m2.server: ["reader"]})
        assert cluster.http is not None
        http = cluster.http
        results = {}
        for tag, (author, reader) in {"host_to_member": ((h, "author"), (m1, "reader")),
                                      "member_to_member": ((m1, "author"), (m2, "reader"))}.items():
            poster = Poster(http, author[0].client_url, net.tokens[(author[0].server, author[1])], net.messages_path)
            receiver = Receiver(http, reader[0].client_url, net.tokens[(reader[0].server, reader[1])])
            await receiver.start()
            try:
                results[tag] = await _path(http, poster, receiver, tag, counts)
            finally:
                await receiver.close()
        return results
