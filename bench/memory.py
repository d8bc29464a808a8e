"""Memory: resident set size (VmRSS from /proc/<pid>/status) of a node process.

* idle: a freshly initialised node, started and left alone for a few seconds;
* loaded: a node holding N stored events spread over K networks. The events are *seeded*,
  not federated: before the node starts, the harness writes K networks through the storage
  API (`NetworkRepository.create`) and bulk-inserts the events into `network_events` (with
  the storage package's table definition), ~300-byte wire forms, then sets each network's
  head. The node is then started, asked for its networks once, and measured after settling.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import update

from bench.counts import Counts
from bench.nodes import BenchCluster, BenchNode
from storage.network.tables import network_events, networks
from storage.storage import Storage

__all__ = ["run_memory"]

_BATCH = 5_000
_WIRE = (b'{"content":{"body":"seeded benchmark event, about the size of a short chat message in a '
         b'shared thread"},"network":"%s","origin":"idle.bench","sender":"agent:seed@idle.bench",'
         b'"signatures":{"idle.bench":{"ed25519:seed":"' + b"A" * 86 + b'"}},"type":"message.posted"}')


async def _seed(node: BenchNode, network_count: int, event_count: int) -> None:
    url = node.database_url or f"sqlite:///{node.data_dir / 'node.db'}"
    storage = await Storage.open(url, auto_migrate=False)
    try:
        ids = []
        async with storage.transaction() as tx:
            for i in range(network_count):
                made = await tx.networks.create(host=node.server, name=f"seeded-{i}", title=f"Seeded {i}",
                                                history_visible=True, now=int(time.time() * 1000))
                ids.append(made.id)
        per_network = event_count // network_count
        now = int(time.time() * 1000)
        rows = ({"network_id": network_id, "event_id": f"$seed{network_id}_{seq}", "seq": seq,
                 "type": "message.posted", "thread": "seeded", "sender": f"agent:seed@{node.server}",
                 "origin": node.server, "origin_ts": now, "wire": _WIRE % str(network_id).encode(),
                 "received_at": now}
                for network_id in ids for seq in range(1, per_network + 1))
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _BATCH:
                async with storage.engine.begin() as conn:
                    await conn.execute(network_events.insert(), batch)
                batch = []
        if batch:
            async with storage.engine.begin() as conn:
                await conn.execute(network_events.insert(), batch)
        async with storage.engine.begin() as conn:
            await conn.execute(update(networks).where(networks.c.id.in_(ids)).values(head_seq=per_network))
    finally:
        await storage.close()


async def _settled_rss(node: BenchNode, settle_s: float) -> int:
    await node.admin("GET", "/v1/networks")
    await asyncio.sleep(settle_s)
    return node.rss_bytes()


async def run_memory(root: Path, backend: str, counts: Counts) -> dict:
    async with BenchCluster(root, backend) as cluster:
        idle, loaded = await cluster.init_nodes("idle.bench", "loaded.bench")
        await idle.start()
        idle_rss = await _settled_rss(idle, counts.idle_settle_s)
        await idle.stop()
        seeding = time.monotonic()
        await _seed(loaded, counts.memory_networks, counts.memory_events)
        seed_s = time.monotonic() - seeding
        await loaded.start()
        loaded_rss = await _settled_rss(loaded, counts.idle_settle_s)
        return {
            "idle_rss_mb": idle_rss / 2**20,
            "loaded_rss_mb": loaded_rss / 2**20,
            "loaded_networks": counts.memory_networks,
            "loaded_events": counts.memory_networks * (counts.memory_events // counts.memory_networks),
            "seed_s": seed_s,
        }
