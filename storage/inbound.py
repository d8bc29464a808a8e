"""Memory of what peers already sent: request nonces within the replay window, and the
answers given to transactions, so a replay is refused and a retry gets the same answer."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network_tables import inbound_transactions, request_nonces

__all__ = ["InboundRepository"]


class InboundRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def remember_nonce(self, origin: str, nonce: str, *, expires_at: int) -> bool:
        """False if this (origin, nonce) was seen before: the request is a replay."""
        seen = await self._conn.scalar(
            select(request_nonces.c.nonce).where(request_nonces.c.origin == origin, request_nonces.c.nonce == nonce)
        )
        if seen is not None:
            return False
        try:
            await self._conn.execute(request_nonces.insert().values(origin=origin, nonce=nonce, expires_at=expires_at))
        except IntegrityError:  # a concurrent request with the same nonce won the race
            return False
        return True

    async def forget_nonces(self, *, now: int) -> int:
        result = await self._conn.execute(delete(request_nonces).where(request_nonces.c.expires_at < now))
        return result.rowcount

    async def forget_transactions(self, *, received_before: int) -> int:
        result = await self._conn.execute(
            delete(inbound_transactions).where(inbound_transactions.c.received_at < received_before)
        )
        return result.rowcount

    async def transaction_response(self, origin: str, txn_id: str) -> bytes | None:
        return await self._conn.scalar(
            select(inbound_transactions.c.response).where(
                inbound_transactions.c.origin == origin, inbound_transactions.c.txn_id == txn_id
            )
        )

    async def save_transaction_response(self, origin: str, txn_id: str, response: bytes, *, now: int) -> None:
        await self._conn.execute(
            inbound_transactions.insert().values(origin=origin, txn_id=txn_id, response=response, received_at=now)
        )
