"""Memory of what peers already sent: request nonces within the replay window, and the
answers given to transactions, so a replay is refused and a retry gets the same answer."""

from __future__ import annotations

import importlib

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from storage.network.tables import inbound_transactions, request_nonces

__all__ = ["InboundRepository"]

# INSERT ... ON CONFLICT DO NOTHING per (dialect, table), built at first use: only the
# dialect in use is imported (PostgreSQL's is 2 MB of a SQLite node's memory otherwise).
_IF_ABSENT: dict[tuple[str, str], Insert] = {}
# Every pushed transaction looks up its answer first: built once (storage.storage says why).
_RESPONSE = select(inbound_transactions.c.response).where(
    inbound_transactions.c.origin == bindparam("origin"), inbound_transactions.c.txn_id == bindparam("txn_id"))


class InboundRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def remember_nonce(self, origin: str, nonce: str, *, expires_at: int) -> bool:
        """False if this (origin, nonce) was seen before: the request is a replay. One
        statement, so a concurrent request with the same nonce cannot slip in between."""
        inserted = await self._conn.execute(
            self._insert_if_absent(request_nonces).values(origin=origin, nonce=nonce, expires_at=expires_at))
        return inserted.rowcount == 1

    async def forget_nonces(self, *, now: int) -> int:
        result = await self._conn.execute(delete(request_nonces).where(request_nonces.c.expires_at < now))
        return result.rowcount

    async def forget_transactions(self, *, received_before: int) -> int:
        result = await self._conn.execute(
            delete(inbound_transactions).where(inbound_transactions.c.received_at < received_before)
        )
        return result.rowcount

    async def transaction_response(self, origin: str, txn_id: str) -> bytes | None:
        return await self._conn.scalar(_RESPONSE, {"origin": origin, "txn_id": txn_id})

    async def save_transaction_response(self, origin: str, txn_id: str, response: bytes, *, now: int) -> None:
        """Keep the answer; the first one saved stays (a concurrent retransmission's is dropped)."""
        await self._conn.execute(self._insert_if_absent(inbound_transactions).values(
            origin=origin, txn_id=txn_id, response=response, received_at=now))

    def _insert_if_absent(self, table: Table) -> Insert:
        """INSERT ... ON CONFLICT DO NOTHING: a row count of 0 means the key was there."""
        key = (self._conn.dialect.name, table.name)
        statement = _IF_ABSENT.get(key)
        if statement is None:
            dialect = importlib.import_module(f"sqlalchemy.dialects.{key[0]}")
            statement = _IF_ABSENT[key] = dialect.insert(table).on_conflict_do_nothing()
        return statement
