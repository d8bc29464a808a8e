"""Alerts for the operator: what a node found that a person has to look at (a host vouching
for a key the company itself does not publish, a network this node cannot follow).

An alert is kept once per distinct finding: raising the same one again counts it and moves its
`last_seen_at`, so a peer that repeats a forgery cannot flood the list.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import node_alerts

__all__ = ["Alert", "AlertRepository"]


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    kind: str
    network: str | None
    server: str | None
    message: str
    detail: dict[str, Any]
    count: int
    created_at: int
    last_seen_at: int


class AlertRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def raise_alert(self, kind: str, *, message: str, now: int, network: str | None = None,
                          server: str | None = None, detail: dict[str, Any] | None = None) -> bool:
        """Record the alert, or count a repeat of it; True if it is new (worth an audit entry)."""
        detail_text = json.dumps(detail or {}, sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(json.dumps([kind, network, server, detail_text]).encode()).hexdigest()
        existing = (await self._conn.execute(
            select(node_alerts.c.id).where(node_alerts.c.fingerprint == fingerprint))).first()
        if existing is not None:
            await self._conn.execute(update(node_alerts).where(node_alerts.c.id == existing.id)
                                     .values(count=node_alerts.c.count + 1, last_seen_at=now, message=message))
            return False
        await self._conn.execute(node_alerts.insert().values(
            fingerprint=fingerprint, kind=kind, network=network, server=server, message=message,
            detail=detail_text, count=1, created_at=now, last_seen_at=now))
        return True

    async def all(self, *, limit: int = 100, kind: str | None = None) -> list[Alert]:
        query = select(node_alerts).order_by(node_alerts.c.last_seen_at.desc(), node_alerts.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(node_alerts.c.kind == kind)
        return [Alert(r.id, r.kind, r.network, r.server, r.message, json.loads(r.detail), r._mapping["count"], r.created_at,
                      r.last_seen_at) for r in await self._conn.execute(query)]

    async def count(self) -> int:
        return (await self._conn.execute(select(func.count()).select_from(node_alerts))).scalar_one()
