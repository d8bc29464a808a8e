"""The audit log: who did what to which object, written in the same transaction as the change
(by `storage.audit_writer`, which this extends with reading and checking the chain)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.audit_writer import GENESIS_HASH, AuditWriter, entry_hash
from storage.private.tables import audit_head, audit_log

# GENESIS_HASH and entry_hash are offered here too: the private side checks a chain it holds
# outside the database (an `agentnet import` file) by the same rule, without naming the bridge.
__all__ = ["GENESIS_HASH", "AuditCheck", "AuditEntry", "AuditFilter", "AuditRepository", "entry_hash"]

# Rows read per round while checking the chain: bounded memory on a log of any length.
_VERIFY_PAGE = 2000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: int
    actor: str
    action: str
    target: str
    network: str | None
    partner: str | None
    detail: dict
    hash: str


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every field that is set must match. `action` matches itself or, ending in ".", every
    action that starts with it ("invite." matches invite.accept and invite.decline)."""

    actor: str | None = None
    action: str | None = None
    network: str | None = None
    partner: str | None = None
    since: int | None = None  # ms, inclusive
    until: int | None = None  # ms, exclusive


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """The result of walking the chain. `broken_at` is the first seq whose row does not hold
    (None when all do); `head_seq`/`head_hash` are what an operator can write down elsewhere
    to prove later that nothing before them was rewritten."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    problem: str | None = None


class AuditRepository(AuditWriter):
    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn)
        self._conn = conn

    async def page(self, *, before: int | None = None, limit: int,
                   where: AuditFilter = AuditFilter()) -> list[AuditEntry]:
        """Newest first; pass the last seq seen as `before` for the next page."""
        query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if before is not None:
            query = query.where(audit_log.c.seq < before)
        for column in ("actor", "network", "partner"):
            if (value := getattr(where, column)) is not None:
                query = query.where(audit_log.c[column] == value)
        if where.action is not None:
            query = query.where(audit_log.c.action.startswith(where.action, autoescape=True)
                                if where.action.endswith(".") else audit_log.c.action == where.action)
        if where.since is not None:
            query = query.where(audit_log.c.at >= where.since)
        if where.until is not None:
            query = query.where(audit_log.c.at < where.until)
        return [
            AuditEntry(r.seq, r.at, r.actor, r.action, r.target, r.network, r.partner, json.loads(r.detail), r.hash)
            for r in await self._conn.execute(query)
        ]

    async def verify(self, *, anchor: tuple[int, str] | None = None) -> AuditCheck:
        """Walk the whole chain: seqs without gaps from 1, each row's prev_hash the hash before
        it and its hash recomputed from its fields, and the head row at the last one. `anchor`
        (seq, hash), written down earlier, must still be in the chain: that catches a chain
        rewritten from some row on, which no hash inside the database can."""
        head = (await self._conn.execute(select(audit_head.c.seq, audit_head.c.hash))).one()
        expected_seq, previous, count, after = 1, GENESIS_HASH, 0, 0

        def broken(seq: int, problem: str) -> AuditCheck:
            return AuditCheck(False, count, head.seq, head.hash, broken_at=seq, problem=problem)

        while True:
            rows = (await self._conn.execute(
                select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(_VERIFY_PAGE)
            )).all()
            for row in rows:
                if row.seq != expected_seq:
                    return broken(expected_seq, f"entry {expected_seq} is missing")
                if row.prev_hash != previous:
                    return broken(row.seq, "its prev_hash is not the hash of the entry before it")
                if entry_hash(row) != row.hash:
                    return broken(row.seq, "its fields do not match its hash: it was changed")
                if anchor is not None and anchor[0] == row.seq and anchor[1] != row.hash:
                    return broken(row.seq, "its hash is not the anchor written down: the chain was rewritten")
                previous, expected_seq, count, after = row.hash, row.seq + 1, count + 1, row.seq
            if len(rows) < _VERIFY_PAGE:
                break
        if head.seq != count or head.hash != previous:
            return broken(count + 1, f"the head says entry {head.seq}, the log ends at {count}: entries were removed")
        if anchor is not None and anchor[0] > count:
            return broken(anchor[0], f"the anchor names entry {anchor[0]}, the log ends at {count}")
        return AuditCheck(True, count, head.seq, head.hash)
