"""The audit log: who did what to which object, written in the same transaction as the change."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.private.tables import audit_log

__all__ = ["AuditEntry", "AuditRepository"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: int
    actor: str
    action: str
    target: str
    detail: dict


class AuditRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record(
        self, *, actor: str, action: str, target: str, now: int, detail: dict | None = None
    ) -> None:
        await self._conn.execute(
            audit_log.insert().values(
                at=now, actor=actor, action=action, target=target,
                detail=json.dumps(detail or {}, sort_keys=True),
            )
        )

    async def page(self, *, before_id: int | None = None, limit: int) -> list[AuditEntry]:
        """Newest first; pass the last id seen as `before_id` for the next page."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        return [
            AuditEntry(r.id, r.at, r.actor, r.action, r.target, json.loads(r.detail))
            for r in await self._conn.execute(query)
        ]
