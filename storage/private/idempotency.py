"""Answers to posts made with an Idempotency-Key, so a retried post is stored once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import AlreadyExists
from storage.private.tables import idempotency_keys

__all__ = ["IdempotencyRepository", "StoredAnswer"]


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    request_hash: str
    status: int
    response: str


class IdempotencyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find(self, principal_id: int, key: str) -> StoredAnswer | None:
        row = (await self._conn.execute(select(idempotency_keys).where(
            idempotency_keys.c.principal_id == principal_id, idempotency_keys.c.key == key))).first()
        return None if row is None else StoredAnswer(row.request_hash, row.status, row.response)

    async def remember(self, principal_id: int, key: str, *, request_hash: str, status: int, response: str,
                       now: int) -> None:
        """Raises AlreadyExists when a concurrent request with the same key committed first."""
        try:
            await self._conn.execute(idempotency_keys.insert().values(
                principal_id=principal_id, key=key, request_hash=request_hash, status=status,
                response=response, created_at=now,
            ))
        except IntegrityError:
            raise AlreadyExists("idempotency key", key) from None

    async def forget(self, *, created_before: int) -> int:
        result = await self._conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < created_before))
        return result.rowcount
