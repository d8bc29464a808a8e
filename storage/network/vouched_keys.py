"""Keys a network's host vouched for a co-member, each kept for that one network.

They verify the co-member's events in that network and nothing else: not a request, not a
host's signature, not an event of another network (`node.federation.key_ring` says which key verifies
what). Keys learned from a company itself are `storage.network.peers`' `peer_keys`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import vouched_keys

__all__ = ["VOUCHED_STATUSES", "VouchedKey", "VouchedKeyRepository"]

VOUCHED_STATUSES = ("confirmed", "unconfirmed", "disputed")

_OF_NETWORK = select(vouched_keys).where(vouched_keys.c.network_id == bindparam("network_id"),
                                         vouched_keys.c.server == bindparam("server"))


@dataclass(frozen=True, slots=True)
class VouchedKey:
    network_id: int
    server: str
    key_id: str
    public_key: bytes
    endpoint: str | None
    status: str  # one of VOUCHED_STATUSES
    pinned_at: int
    checked_at: int | None
    valid_until: int | None
    revoked_at: int | None


def _key(row) -> VouchedKey:
    return VouchedKey(row.network_id, row.server, row.key_id, row.public_key, row.endpoint, row.status,
                      row.pinned_at, row.checked_at, row.valid_until, row.revoked_at)


class VouchedKeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def in_network(self, network_id: int, server: str) -> list[VouchedKey]:
        rows = await self._conn.execute(_OF_NETWORK, {"network_id": network_id, "server": server})
        return [_key(r) for r in rows]

    async def of_server(self, server: str) -> list[VouchedKey]:
        """Every network's vouched keys of `server` (to check them, and for the endpoints hosts gave)."""
        rows = await self._conn.execute(select(vouched_keys).where(vouched_keys.c.server == server)
                                        .order_by(vouched_keys.c.network_id, vouched_keys.c.key_id))
        return [_key(r) for r in rows]

    async def servers_with(self, status: str) -> list[str]:
        rows = await self._conn.execute(select(vouched_keys.c.server).where(vouched_keys.c.status == status)
                                        .distinct().order_by(vouched_keys.c.server))
        return [r.server for r in rows]

    async def pin(self, network_id: int, server: str, *, key_id: str, public_key: bytes, status: str,
                  endpoint: str | None, now: int, valid_until: int | None = None) -> None:
        """Pin, or update the status, endpoint and validity of the same key; a disputed key stays
        disputed. A different key under a pinned id is a `ValueError`: a key id names one key
        for good."""
        existing = (await self._conn.execute(
            select(vouched_keys).where(vouched_keys.c.network_id == network_id, vouched_keys.c.server == server,
                                       vouched_keys.c.key_id == key_id))).first()
        if existing is None:
            await self._conn.execute(vouched_keys.insert().values(
                network_id=network_id, server=server, key_id=key_id, public_key=public_key, endpoint=endpoint,
                status=status, pinned_at=now, checked_at=now if status != "unconfirmed" else None,
                valid_until=valid_until, revoked_at=None))
        elif existing.public_key != public_key:
            raise ValueError(f"vouched key {key_id} of {server} is pinned with different bytes")
        else:
            status = "disputed" if existing.status == "disputed" else status
            await self._conn.execute(
                update(vouched_keys).where(vouched_keys.c.network_id == network_id, vouched_keys.c.server == server,
                                           vouched_keys.c.key_id == key_id)
                .values(status=status, endpoint=endpoint or existing.endpoint, valid_until=valid_until,
                        checked_at=now if status != "unconfirmed" else existing.checked_at))

    async def set_status(self, server: str, key_id: str, status: str, *, now: int,
                         network_ids: Iterable[int] | None = None) -> None:
        """Record what checking the key against the company's own keys found."""
        query = update(vouched_keys).where(vouched_keys.c.server == server, vouched_keys.c.key_id == key_id)
        if network_ids is not None:
            query = query.where(vouched_keys.c.network_id.in_(list(network_ids)))
        await self._conn.execute(query.values(status=status, checked_at=now))

    async def revoke(self, server: str, key_ids: Iterable[str], *, now: int,
                     network_ids: Iterable[int] | None = None) -> None:
        """The company revoked these keys: they verify nothing from now on."""
        wanted = list(key_ids)
        if not wanted:
            return
        query = update(vouched_keys).where(vouched_keys.c.server == server, vouched_keys.c.key_id.in_(wanted),
                                           vouched_keys.c.revoked_at.is_(None))
        if network_ids is not None:
            query = query.where(vouched_keys.c.network_id.in_(list(network_ids)))
        await self._conn.execute(query.values(revoked_at=now))
