"""Copying the company's private side out of one database and into a fresh one, table by table:
the storage half of `agentnet export --private` and `agentnet import` (`node.ops.private_file`
describes the file, `node.ops.private_export` and `node.ops.private_import` use this).

It lives at the top of `storage/` because the private side includes the operators' policy rows,
which sit among the network tables (`storage.network.tables.policies`).

Rows travel as plain column dicts, one per row: this is a copy of tables, not a domain
operation, and the file's pydantic models one layer up are what names and validates them.

Loading keeps every id the rows carry (private message ids are clients' read cursors, token ids
are what `token revoke` names), so on PostgreSQL each serial sequence is moved past the
highest id afterwards. Two things cannot come along unchanged: webhooks restart at the new
node's feed head with a clean delivery record (feed positions belong to the database they were
handed out in), and the audit log replaces the fresh node's own entries (`agentnet init`'s),
which takes lifting the append-only triggers for the one delete, inside the same transaction;
they are recreated from their own stored definitions before it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import NETWORK_METADATA, policies
from storage.private.tables import (
    PRIVATE_METADATA,
    admin_tokens,
    app_agents,
    audit_head,
    audit_log,
    company,
    feed_state,
    knowledge_items,
    knowledge_readers,
    principal_tokens,
    principals,
    private_messages,
    private_thread_members,
    private_threads,
    webhooks,
)

__all__ = ["FRESH_AUDIT_ACTIONS", "PrivateRows", "PrivateTransfer"]

# What `agentnet init` and `agentnet admin-token` write to the audit log of a node that holds
# nothing yet; a node whose log holds anything else has been used.
FRESH_AUDIT_ACTIONS = frozenset({"node.init", "admin.token_reset"})
# Tables a fresh node may hold rows in: its company row and admin tokens (init), the audit log
# and its head (checked by action above), the feed's head row, and its own public keys
# (recorded when it first ran). Every other table, including any a later migration adds, must
# be empty.
_FRESH_TABLES = frozenset({"company", "admin_tokens", "audit_log", "audit_head", "feed_state", "node_keys"})
# Rows per INSERT: bounds the size of one statement on a large import.
_CHUNK = 2000

_COLUMNS: dict[str, tuple[Table, tuple[str, ...]]] = {
    "principals": (principals, ("id", "kind", "handle", "display_name", "profile", "disabled", "created_at")),
    "principal_tokens": (principal_tokens, ("id", "principal_id", "token_hash", "prefix", "scopes", "created_at",
                                            "expires_at", "revoked_at")),
    "app_agents": (app_agents, ("app_id", "agent_id")),
    "admin_tokens": (admin_tokens, ("token_hash", "prefix", "created_at", "revoked_at")),
    "private_threads": (private_threads, ("id", "name", "title", "created_at")),
    "private_thread_members": (private_thread_members, ("thread_id", "principal_id")),
    "private_messages": (private_messages, ("id", "thread_id", "sender_id", "body", "created_at")),
    "knowledge_items": (knowledge_items, ("id", "title", "body", "restricted", "created_at")),
    "knowledge_readers": (knowledge_readers, ("item_id", "principal_id")),
    "webhooks": (webhooks, ("id", "principal_id", "url", "secret", "status", "disabled_reason", "created_at",
                            "filter")),
    "policies": (policies, ("scope", "settings", "updated_at", "updated_by")),
    "audit_log": (audit_log, ("seq", "at", "actor", "action", "target", "network", "partner", "detail",
                              "prev_hash", "hash")),
}
# Tables whose ids are kept: their sequences move past the highest one (PostgreSQL).
_KEPT_IDS = (principals, principal_tokens, private_threads, private_messages, knowledge_items, webhooks)
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PrivateRows:
    """Every table of the private side, each a list of column dicts (`_COLUMNS` names them)."""

    company: Row | None
    tables: dict[str, list[Row]]
    audit_head: tuple[int, str]  # seq, hash


class PrivateTransfer:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def hold_snapshot(self) -> None:
        """Make the rest of this transaction read one snapshot. PostgreSQL reads each statement
        at its own moment by default, so a message posted between two reads could name a
        thread the file does not hold; this must be the transaction's first statement. SQLite
        needs nothing: statements run on the loop's thread and no commit comes between them."""
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))

    async def counts(self) -> dict[str, int]:
        found = {}
        for name, (table, _columns) in _COLUMNS.items():
            found[name] = (await self._conn.execute(select(func.count()).select_from(table))).scalar_one()
        return found

    async def read(self) -> PrivateRows:
        row = (await self._conn.execute(select(company.c.server_name, company.c.display_name, company.c.created_at)
                                        .where(company.c.id == 1))).first()
        tables = {}
        for name, (table, columns) in _COLUMNS.items():
            query = select(*(table.c[c] for c in columns)).order_by(*table.primary_key.columns)
            if table is audit_log:
                query = query.order_by(None).order_by(audit_log.c.seq)
            tables[name] = [dict(r._mapping) for r in await self._conn.execute(query)]
        head = (await self._conn.execute(select(audit_head.c.seq, audit_head.c.hash))).one()
        return PrivateRows(None if row is None else dict(row._mapping), tables, (head.seq, head.hash))

    async def leftovers(self, server_name: str) -> list[str]:
        """What keeps this database from being fresh (empty list: it is fresh). Fresh is what
        `agentnet init` leaves: at most the company row, of this server; admin tokens; audit
        entries of init and admin-token resets only; nothing in any other table."""
        found = []
        present = set(await self._conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        for table in [*PRIVATE_METADATA.sorted_tables, *NETWORK_METADATA.sorted_tables]:
            if table.name in _FRESH_TABLES or table.name not in present:
                continue
            count = (await self._conn.execute(select(func.count()).select_from(table))).scalar_one()
            if count:
                found.append(f"{table.name}: {count} row{'s' if count != 1 else ''}")
        owner = await self._conn.scalar(select(company.c.server_name).where(company.c.id == 1))
        if owner is not None and owner != server_name:
            found.append(f"company: the database is {owner}'s")
        used = (await self._conn.execute(
            select(func.count()).where(audit_log.c.action.not_in(sorted(FRESH_AUDIT_ACTIONS))))).scalar_one()
        if used:
            found.append(f"audit_log: {used} entries of a node in use")
        return found

    async def load(self, rows: PrivateRows, *, now: int) -> list[Row]:
        """Write `rows` into a fresh database (`leftovers` found nothing). Returns the audit
        entries the file's log replaced (the fresh node's own), for the import's own entry."""
        await self._company(rows.company)
        known = set(await self._conn.scalars(select(admin_tokens.c.token_hash)))
        await self._insert(admin_tokens, [r for r in rows.tables["admin_tokens"] if r["token_hash"] not in known])
        cursor = await self._conn.scalar(select(feed_state.c.head).where(feed_state.c.id == 1)) or 0
        for name in ("principals", "principal_tokens", "app_agents", "private_threads", "private_thread_members",
                     "private_messages", "knowledge_items", "knowledge_readers", "policies"):
            await self._insert(_COLUMNS[name][0], rows.tables.get(name, []))  # a file from before a table: none
        await self._insert(webhooks, [{**r, "cursor": cursor, "failures": 0, "next_attempt_at": now}
                                      for r in rows.tables["webhooks"]])
        replaced = await self._replace_audit(rows.tables["audit_log"], rows.audit_head)
        await self._move_sequences()
        return replaced

    async def _company(self, row: Row | None) -> None:
        if row is None:
            return
        values = {"server_name": row["server_name"], "display_name": row["display_name"],
                  "created_at": row["created_at"]}
        changed = await self._conn.execute(update(company).where(company.c.id == 1).values(**values))
        if not changed.rowcount:
            await self._conn.execute(company.insert().values(id=1, **values))

    async def _insert(self, table: Table, rows: Sequence[Row]) -> None:
        for start in range(0, len(rows), _CHUNK):
            await self._conn.execute(table.insert(), list(rows[start:start + _CHUNK]))

    async def _replace_audit(self, entries: list[Row], head: tuple[int, str]) -> list[Row]:
        columns = _COLUMNS["audit_log"][1]
        replaced = [dict(r._mapping) for r in await self._conn.execute(
            select(*(audit_log.c[c] for c in columns)).order_by(audit_log.c.seq))]
        if replaced:
            guards = await self._append_only_guards()
            for drop, _create in guards:
                await self._conn.execute(text(drop))
            await self._conn.execute(audit_log.delete())
            for _drop, create in guards:
                await self._conn.execute(text(create))
        await self._insert(audit_log, entries)
        await self._conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=head[0], hash=head[1]))
        return replaced

    async def _append_only_guards(self) -> list[tuple[str, str]]:
        """(drop, create) statements of the audit log's triggers, as the database stores them."""
        if self._conn.dialect.name == "postgresql":
            found = await self._conn.execute(text(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal"))
            return [(f'DROP TRIGGER "{name}" ON audit_log', definition) for name, definition in found]
        found = await self._conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"))
        return [(f'DROP TRIGGER "{name}"', definition) for name, definition in found]

    async def _move_sequences(self) -> None:
        if self._conn.dialect.name != "postgresql":
            return  # SQLite hands out max(id) + 1
        for table in _KEPT_IDS:
            await self._conn.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
