"""Consent for threads other companies open naming this company's participants
(`storage.network.tables.thread_consents`): one row per held-back thread, read for every event
of a thread that has one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import networks, thread_consents

__all__ = ["ConsentRecord", "ConsentRepository"]

_STATUS = select(thread_consents.c.status).where(thread_consents.c.network_id == bindparam("network_id"),
                                                 thread_consents.c.thread == bindparam("thread"))


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    network: str
    thread: str
    opened_by: str
    status: str
    requested_at: int
    decided_at: int | None
    decided_by: str | None


def _record(row: Any) -> ConsentRecord:
    return ConsentRecord(row.network_name, row.thread, row.opened_by, row.status, row.requested_at, row.decided_at,
                         row.decided_by)


class ConsentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def request(self, network_id: int, thread: str, *, opened_by: str, now: int) -> None:
        await self._conn.execute(thread_consents.insert().values(
            network_id=network_id, thread=thread, opened_by=opened_by, status="pending", requested_at=now))

    async def status(self, network_id: int, thread: str) -> str | None:
        """pending, accepted or declined; None: nothing was asked (the thread is not held back)."""
        return await self._conn.scalar(_STATUS, {"network_id": network_id, "thread": thread})

    async def held_back(self, network_id: int) -> set[str]:
        """Threads of the network not accepted (yet): their events are not shown here."""
        rows = await self._conn.execute(select(thread_consents.c.thread).where(
            thread_consents.c.network_id == network_id, thread_consents.c.status != "accepted"))
        return {r.thread for r in rows}

    async def decide(self, network_id: int, thread: str, *, status: str, by: str, now: int) -> None:
        await self._conn.execute(update(thread_consents).where(
            thread_consents.c.network_id == network_id, thread_consents.c.thread == thread,
        ).values(status=status, decided_at=now, decided_by=by[:200]))

    async def find(self, network: str, thread: str) -> ConsentRecord | None:
        row = (await self._conn.execute(self._select().where(networks.c.name == network,
                                                             thread_consents.c.thread == thread))).first()
        return _record(row) if row is not None else None

    async def listed(self, *, status: str | None) -> list[ConsentRecord]:
        stmt = self._select()
        if status is not None:
            stmt = stmt.where(thread_consents.c.status == status)
        rows = await self._conn.execute(stmt.order_by(thread_consents.c.requested_at, networks.c.name,
                                                      thread_consents.c.thread))
        return [_record(r) for r in rows]

    @staticmethod
    def _select() -> Any:
        return select(thread_consents, networks.c.name.label("network_name")).join(
            networks, networks.c.id == thread_consents.c.network_id)
