"""Rows of the operators' policy (`storage.network.tables.policies`): JSON per scope, read on
every event a partner sends, so reads are one primary-key lookup each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import policies

__all__ = ["PolicyRecord", "PolicyRepository"]

_FIND = select(policies).where(policies.c.scope.in_(bindparam("scopes", expanding=True)))


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    scope: str
    settings: dict[str, Any]
    updated_at: int
    updated_by: str


def _record(row: Any) -> PolicyRecord:
    return PolicyRecord(row.scope, json.loads(row.settings), row.updated_at, row.updated_by)


class PolicyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find(self, *scopes: str) -> dict[str, PolicyRecord]:
        """The rows of `scopes` that exist, by scope."""
        return {row.scope: _record(row) for row in await self._conn.execute(_FIND, {"scopes": list(scopes)})}

    async def all(self) -> list[PolicyRecord]:
        return [_record(row) for row in await self._conn.execute(select(policies).order_by(policies.c.scope))]

    async def put(self, scope: str, settings: dict[str, Any], *, now: int, by: str) -> None:
        """Replace the row of `scope` (callers run under the writers' turn or a row lock)."""
        values = {"settings": json.dumps(settings, sort_keys=True), "updated_at": now, "updated_by": by[:200]}
        changed = await self._conn.execute(update(policies).where(policies.c.scope == scope).values(**values))
        if not changed.rowcount:
            await self._conn.execute(policies.insert().values(scope=scope, **values))

    async def delete(self, scope: str) -> bool:
        result = await self._conn.execute(delete(policies).where(policies.c.scope == scope))
        return bool(result.rowcount)
