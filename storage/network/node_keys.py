"""This node's own public keys over time, for the key document peers fetch."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import node_keys

__all__ = ["NodeKeyRecord", "NodeKeyRepository"]


@dataclass(frozen=True, slots=True)
class NodeKeyRecord:
    key_id: str
    public_key: bytes
    created_at: int
    valid_until: int | None
    revoked_at: int | None
    rotation_notice: bytes | None


class NodeKeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, key_id: str, public_key: bytes, now: int, rotation_notice: bytes | None = None) -> None:
        await self._conn.execute(node_keys.insert().values(
            key_id=key_id, public_key=public_key, created_at=now, rotation_notice=rotation_notice
        ))

    async def all(self) -> list[NodeKeyRecord]:
        rows = await self._conn.execute(select(node_keys).order_by(node_keys.c.created_at, node_keys.c.key_id))
        return [NodeKeyRecord(r.key_id, r.public_key, r.created_at, r.valid_until, r.revoked_at, r.rotation_notice)
                for r in rows]

    async def retire(self, key_id: str, *, valid_until: int) -> None:
        await self._conn.execute(update(node_keys).where(node_keys.c.key_id == key_id).values(valid_until=valid_until))
