"""Appending to the audit log, hash-chained: the second bridge from the network side into a
private table (the first is `storage.feed_writer`). Cross-company actions happen on both sides:
an operator's own (invite, attach, policy) and a partner's arriving through federation (a
member admitted, a key rotated, a post refused). A network transaction carries an
`AuditWriter` so those are recorded in the same commit as the change; the writer appends and
can read nothing.

Each row's `hash` is SHA-256 over its own fields and the previous row's hash (`entry_hash`),
so changing, removing or reordering a row breaks every hash after it
(`storage.private.audit.AuditRepository.verify`). The head (last seq and hash) sits in
`audit_head`; rows take their seqs under that row's lock at commit, so the chain is one line
even with several writers on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.private.tables import audit_head, audit_log

__all__ = ["GENESIS_HASH", "AuditWriter", "entry_hash"]

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first row."""

# Run in every commit that audits: built once (storage.storage says why).
_TAKE = (update(audit_head).where(audit_head.c.id == 1)
         .values(seq=audit_head.c.seq + bindparam("count")).returning(audit_head.c.seq, audit_head.c.hash))
_SET_HEAD = update(audit_head).where(audit_head.c.id == 1).values(hash=bindparam("head_hash"))
_APPEND = audit_log.insert()


def entry_hash(row: dict[str, Any] | Any) -> str:
    """The hash a row must carry: over every field an operator reads, in a fixed order, and
    the hash before it. `row` is a mapping or a result row with the audit_log columns."""
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    fields = [get("seq"), get("at"), get("actor"), get("action"), get("target"), get("network"),
              get("partner"), get("detail"), get("prev_hash")]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode()).hexdigest()


class AuditWriter:
    """Appends only; rows are chained and written by `flush`, just before the commit, so the
    head row is locked for the last moment of the transaction (as the feed's is)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._rows: list[dict[str, Any]] = []

    async def record(
        self, *, actor: str, action: str, target: str, now: int, detail: dict | None = None,
        network: str | None = None, partner: str | None = None,
    ) -> None:
        """`network` and `partner` (another company's server name) are what the log is
        filtered by; give them whenever the action concerns one."""
        self._rows.append({"at": now, "actor": actor[:200], "action": action[:64], "target": target[:300],
                           "network": network, "partner": partner,
                           "detail": json.dumps(detail or {}, sort_keys=True, separators=(",", ":"))})

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        head = (await self._conn.execute(_TAKE, {"count": len(rows)})).one()
        previous = head.hash
        for seq, row in enumerate(rows, start=head.seq - len(rows) + 1):
            row["seq"] = seq
            row["prev_hash"] = previous
            row["hash"] = previous = entry_hash(row)
        await self._conn.execute(_APPEND, rows)
        await self._conn.execute(_SET_HEAD, {"head_hash": previous})
