"""Messages the outbound guard flagged: listed for operators until one reviews them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.private.tables import guard_flags
from storage.results import inserted_id

__all__ = ["GuardFlag", "GuardFlagRepository"]


@dataclass(frozen=True, slots=True)
class GuardFlag:
    id: int
    at: int
    author: str
    network: str
    thread: str | None
    event_id: str
    rules: list[str]
    reviewed_at: int | None
    reviewed_by: str | None
    verdict: str | None
    note: str | None


def _flag(row: Any) -> GuardFlag:
    return GuardFlag(row.id, row.at, row.author, row.network, row.thread, row.event_id, json.loads(row.rules),
                     row.reviewed_at, row.reviewed_by, row.verdict, row.note)


class GuardFlagRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, author: str, network: str, thread: str | None, event_id: str, rules: list[str],
                  now: int) -> int:
        result = await self._conn.execute(guard_flags.insert().values(
            at=now, author=author, network=network, thread=thread, event_id=event_id, rules=json.dumps(rules)))
        return inserted_id(result)

    async def page(self, *, status: Literal["open", "reviewed", "all"], after_id: int, limit: int) -> list[GuardFlag]:
        stmt = select(guard_flags).where(guard_flags.c.id > after_id)
        if status == "open":
            stmt = stmt.where(guard_flags.c.reviewed_at.is_(None))
        elif status == "reviewed":
            stmt = stmt.where(guard_flags.c.reviewed_at.is_not(None))
        rows = await self._conn.execute(stmt.order_by(guard_flags.c.id).limit(limit))
        return [_flag(r) for r in rows]

    async def get(self, flag_id: int) -> GuardFlag | None:
        row = (await self._conn.execute(select(guard_flags).where(guard_flags.c.id == flag_id))).first()
        return _flag(row) if row is not None else None

    async def review(self, flag_id: int, *, verdict: str, note: str | None, by: str, now: int) -> None:
        await self._conn.execute(update(guard_flags).where(guard_flags.c.id == flag_id).values(
            reviewed_at=now, reviewed_by=by[:200], verdict=verdict, note=note))
