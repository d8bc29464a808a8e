"""What the soak reads and writes in a node's database directly, outside the node's APIs.

Two things only: pointing a node's peers at the fault proxies (an operator-level change,
made while the node is stopped: the `peers` table's `endpoint` is where a node reaches a peer,
pinned when the invite was accepted, and no API changes it), and reading a node's chain head
and event ids read-only (the APIs show `head_seq` but not the head's link hash).
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bench.nodes import BenchNode, NodeFailed

__all__ = ["ChainCopy", "read_chain", "repoint_peers"]


@dataclass(frozen=True, slots=True)
class ChainCopy:
    head_seq: int
    head_hash: str | None  # hex
    event_ids: tuple[str, ...]  # by seq, from 1


async def repoint_peers(node: BenchNode, endpoints: dict[str, str]) -> None:
    """Set `endpoints[server]` as the endpoint of each peer; the node must be stopped."""
    if node.proc is not None and node.proc.poll() is None:
        raise NodeFailed(f"{node.server} is running: stop it before changing its peers")
    if node.database_url:
        import asyncpg

        conn = await asyncpg.connect(node.database_url, timeout=10)
        try:
            for server, endpoint in endpoints.items():
                done = await conn.execute("UPDATE peers SET endpoint = $1 WHERE server = $2", endpoint, server)
                if done != "UPDATE 1":
                    raise NodeFailed(f"{node.server} has no peer {server} ({done})")
        finally:
            await conn.close()
        return
    await asyncio.to_thread(_repoint_sqlite, _sqlite_path(node), endpoints, node.server)


def _repoint_sqlite(path: Path, endpoints: dict[str, str], owner: str) -> None:
    with sqlite3.connect(path) as conn:  # commits on leaving the block
        for server, endpoint in endpoints.items():
            if conn.execute("UPDATE peers SET endpoint = ? WHERE server = ?", (endpoint, server)).rowcount != 1:
                raise NodeFailed(f"{owner} has no peer {server}")
    conn.close()


async def read_chain(node: BenchNode, network: str, host: str) -> ChainCopy:
    """The node's copy of a network's chain, read without writing anything."""
    if node.database_url:
        import asyncpg

        conn = await asyncpg.connect(node.database_url, timeout=10)
        try:
            async with conn.transaction(readonly=True):
                row = await conn.fetchrow("SELECT id, head_seq, head_hash FROM networks WHERE host = $1 AND name = $2",
                                          host, network)
                if row is None:
                    raise NodeFailed(f"{node.server} has no network {network}")
                ids = await conn.fetch("SELECT event_id FROM network_events WHERE network_id = $1 AND seq IS NOT NULL "
                                       "ORDER BY seq", row["id"])
        finally:
            await conn.close()
        return _chain(row["head_seq"], row["head_hash"], [r["event_id"] for r in ids])
    return await asyncio.to_thread(_read_sqlite_chain, node.server, _sqlite_path(node), network, host)


def _read_sqlite_chain(owner: str, path: Path, network: str, host: str) -> ChainCopy:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")  # one snapshot for both reads
        row = conn.execute("SELECT id, head_seq, head_hash FROM networks WHERE host = ? AND name = ?",
                           (host, network)).fetchone()
        if row is None:
            raise NodeFailed(f"{owner} has no network {network}")
        ids = conn.execute("SELECT event_id FROM network_events WHERE network_id = ? AND seq IS NOT NULL "
                           "ORDER BY seq", (row[0],)).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    return _chain(row[1], row[2], [r[0] for r in ids])


def _chain(head_seq: int, head_hash: bytes | None, ids: list[str]) -> ChainCopy:
    return ChainCopy(head_seq, head_hash.hex() if head_hash is not None else None, tuple(ids))


def _sqlite_path(node: BenchNode) -> Path:
    return node.data_dir / "node.db"  # the default `init` writes (node.basics.config.resolved_database_url)
