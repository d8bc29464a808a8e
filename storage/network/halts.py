"""Networks this node cannot follow: the host's next event was refused here.

A halt names the event and why. The catch-up worker tries again with growing pauses (and at
once when an operator resumes); the halt goes when the event is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import network_halts, networks

__all__ = ["Halt", "HaltRepository"]

_FIND = select(network_halts).where(network_halts.c.network_id == bindparam("network_id"))


@dataclass(frozen=True, slots=True)
class Halt:
    network_id: int
    network: str
    seq: int
    event_id: str | None
    code: str
    reason: str
    since: int
    tries: int
    next_try_at: int


def _halt(row, name: str) -> Halt:
    return Halt(row.network_id, name, row.seq, row.event_id, row.code, row.reason, row.since, row.tries,
                row.next_try_at)


class HaltRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find(self, network_id: int) -> Halt | None:
        row = (await self._conn.execute(_FIND, {"network_id": network_id})).first()
        if row is None:
            return None
        name = (await self._conn.execute(select(networks.c.name).where(networks.c.id == network_id))).scalar_one()
        return _halt(row, name)

    async def halt(self, network_id: int, *, seq: int, event_id: str | None, code: str, reason: str, now: int,
                   next_try_at: int) -> Halt:
        """Record the halt, or one more failed try of the same one."""
        existing = (await self._conn.execute(_FIND, {"network_id": network_id})).first()
        if existing is None:
            await self._conn.execute(network_halts.insert().values(
                network_id=network_id, seq=seq, event_id=event_id, code=code, reason=reason[:2000], since=now,
                tries=1, next_try_at=next_try_at))
        else:
            await self._conn.execute(update(network_halts).where(network_halts.c.network_id == network_id).values(
                seq=seq, event_id=event_id, code=code, reason=reason[:2000], tries=existing.tries + 1,
                next_try_at=next_try_at))
        found = await self.find(network_id)
        assert found is not None
        return found

    async def clear(self, network_id: int) -> bool:
        result = await self._conn.execute(delete(network_halts).where(network_halts.c.network_id == network_id))
        return result.rowcount > 0

    async def retry_now(self, network_id: int, *, now: int) -> bool:
        result = await self._conn.execute(update(network_halts).where(network_halts.c.network_id == network_id)
                                          .values(next_try_at=now))
        return result.rowcount > 0

    async def all(self) -> list[Halt]:
        rows = await self._conn.execute(
            select(network_halts, networks.c.name).join(networks, networks.c.id == network_halts.c.network_id)
            .order_by(networks.c.name))
        return [_halt(r, r.name) for r in rows]
