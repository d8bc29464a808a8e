"""Webhook endpoints of principals and where each one's delivery stands."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import NotFound
from storage.private.tables import webhooks
from storage.results import inserted_id

__all__ = ["Webhook", "WebhookRepository"]


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    principal_id: int
    url: str
    secret: str
    status: str  # "active" or "disabled"
    cursor: int
    failures: int
    first_failure_at: int | None
    next_attempt_at: int
    last_status: int | None
    last_error: str | None
    last_success_at: int | None
    disabled_reason: str | None
    created_at: int
    filter: str | None = None  # what it follows, as JSON (node.feed.filters); None: everything


def _webhook(row) -> Webhook:
    return Webhook(row.id, row.principal_id, row.url, row.secret, row.status, row.cursor, row.failures,
                   row.first_failure_at, row.next_attempt_at, row.last_status, row.last_error,
                   row.last_success_at, row.disabled_reason, row.created_at, row.filter)


class WebhookRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(self, principal_id: int, *, url: str, secret: str, cursor: int, now: int,
                     filter: str | None = None) -> Webhook:
        values = dict(principal_id=principal_id, url=url, secret=secret, status="active", cursor=cursor,
                      failures=0, next_attempt_at=now, created_at=now, filter=filter)
        result = await self._conn.execute(webhooks.insert().values(**values))
        return await self.get(inserted_id(result))

    async def get(self, webhook_id: int, *, principal_id: int | None = None) -> Webhook:
        query = select(webhooks).where(webhooks.c.id == webhook_id)
        if principal_id is not None:
            query = query.where(webhooks.c.principal_id == principal_id)
        row = (await self._conn.execute(query)).first()
        if row is None:
            raise NotFound("webhook", str(webhook_id))
        return _webhook(row)

    async def count_for(self, principal_id: int) -> int:
        return (await self._conn.execute(select(func.count()).where(webhooks.c.principal_id == principal_id))).scalar_one()

    async def all(self, *, principal_id: int | None = None) -> list[Webhook]:
        query = select(webhooks).order_by(webhooks.c.id)
        if principal_id is not None:
            query = query.where(webhooks.c.principal_id == principal_id)
        return [_webhook(r) for r in await self._conn.execute(query)]

    async def delete(self, webhook_id: int, *, principal_id: int) -> None:
        result = await self._conn.execute(
            delete(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.principal_id == principal_id))
        if result.rowcount == 0:
            raise NotFound("webhook", str(webhook_id))

    async def due(self, *, now: int, limit: int) -> list[Webhook]:
        rows = await self._conn.execute(
            select(webhooks).where(webhooks.c.status == "active", webhooks.c.next_attempt_at <= now)
            .order_by(webhooks.c.next_attempt_at).limit(limit))
        return [_webhook(r) for r in rows]

    async def next_due_at(self) -> int | None:
        return await self._conn.scalar(select(func.min(webhooks.c.next_attempt_at)).where(webhooks.c.status == "active"))

    async def delivered(self, webhook_id: int, *, cursor: int, status: int | None, now: int | None) -> None:
        """Advance past `cursor`. `now` set: a delivery succeeded (failures reset)."""
        values: dict = {"cursor": cursor}
        if now is not None:
            values.update(failures=0, first_failure_at=None, last_status=status, last_error=None,
                          last_success_at=now, next_attempt_at=now)
        await self._conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))

    async def failed(self, webhook_id: int, *, status: int | None, error: str, next_attempt_at: int, now: int) -> None:
        await self._conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(
            failures=webhooks.c.failures + 1, first_failure_at=func.coalesce(webhooks.c.first_failure_at, now),
            last_status=status, last_error=error[:1000], next_attempt_at=next_attempt_at,
        ))

    async def set_status(self, webhook_id: int, *, status: str, reason: str | None, now: int) -> None:
        values: dict = {"status": status, "disabled_reason": reason}
        if status == "active":
            values.update(failures=0, first_failure_at=None, next_attempt_at=now)
        await self._conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))

    async def lowest_active_cursor(self) -> int | None:
        """Feed rows after this are still to be delivered by some active webhook."""
        return await self._conn.scalar(select(func.min(webhooks.c.cursor)).where(webhooks.c.status == "active"))

    async def behind(self, *, now: int, head: int, limit: int) -> list[Webhook]:
        """Active webhooks with feed rows after their cursor and no backoff or lease holding them."""
        rows = await self._conn.execute(
            select(webhooks).where(webhooks.c.status == "active", webhooks.c.next_attempt_at <= now,
                                   webhooks.c.cursor < head)
            .order_by(webhooks.c.next_attempt_at).limit(limit))
        return [_webhook(r) for r in rows]

    async def next_behind_at(self, *, head: int) -> int | None:
        """When the earliest webhook that is behind the feed may be tried (backoff or lease)."""
        return await self._conn.scalar(select(func.min(webhooks.c.next_attempt_at)).where(
            webhooks.c.status == "active", webhooks.c.cursor < head))

    async def claim(self, webhook_id: int, *, now: int, lease_until: int) -> Webhook | None:
        """Take the one attempt allowed now: a compare-and-set on `next_attempt_at`, so of several
        processes on one database only one sends (a lease that lapses if that process dies)."""
        result = await self._conn.execute(update(webhooks).where(
            webhooks.c.id == webhook_id, webhooks.c.status == "active", webhooks.c.next_attempt_at <= now,
        ).values(next_attempt_at=lease_until))
        if result.rowcount != 1:
            return None
        return await self.get(webhook_id)

    async def advance(self, webhook_id: int, *, cursor: int, now: int, note: str | None = None) -> None:
        """Move past rows that need no request (invisible to the owner, or pruned) and end the lease."""
        values: dict = {"cursor": cursor, "next_attempt_at": now}
        if note is not None:
            values["last_error"] = note[:1000]
        await self._conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))
