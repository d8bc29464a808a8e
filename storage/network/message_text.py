"""Search over the shared threads a participant takes part in, in this node's own copy
(`storage.network.tables.shared_message_text`), with the same full-text machinery as knowledge
search: SQLite FTS5, PostgreSQL `to_tsvector('simple', ...)` with a GIN index.

Visibility is part of the query, not a filter after it: only threads the participant is in,
of networks not archived here, and not held back for consent. So a search can never return a
message its caller could not read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.tables import (
    networks,
    shared_message_text,
    shared_thread_participants,
    shared_threads,
    thread_consents,
)
from storage.search import search_words, sqlite_match

__all__ = ["MessageHit", "MessageTextRepository"]


@dataclass(frozen=True, slots=True)
class MessageHit:
    network: str
    thread: str
    event_id: str


class MessageTextRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def put(self, network_id: int, event_id: str, thread: str, body: str) -> None:
        """A message's text (an edit replaces it)."""
        changed = await self._conn.execute(update(shared_message_text).where(
            shared_message_text.c.event_id == event_id).values(body=body))
        if not changed.rowcount:
            await self._conn.execute(shared_message_text.insert().values(
                network_id=network_id, event_id=event_id, thread=thread, body=body))

    async def edit(self, event_id: str, body: str) -> None:
        await self._conn.execute(update(shared_message_text).where(
            shared_message_text.c.event_id == event_id).values(body=body))

    async def remove(self, event_id: str) -> None:
        await self._conn.execute(delete(shared_message_text).where(shared_message_text.c.event_id == event_id))

    async def search(self, query: str, *, participant: str, network: str | None, limit: int) -> list[MessageHit]:
        """Messages matching every word of `query`, in threads `participant` may read, the latest
        this node received first."""
        words = search_words(query)
        if not words:
            return []
        t = shared_message_text
        stmt = (
            select(networks.c.name, t.c.thread, t.c.event_id)
            .join(networks, networks.c.id == t.c.network_id)
            .join(shared_threads, and_(shared_threads.c.network_id == t.c.network_id,
                                       shared_threads.c.name == t.c.thread))
            .join(shared_thread_participants, and_(shared_thread_participants.c.thread_id == shared_threads.c.id,
                                                   shared_thread_participants.c.participant == participant))
            .outerjoin(thread_consents, and_(thread_consents.c.network_id == t.c.network_id,
                                             thread_consents.c.thread == t.c.thread))
            .where(networks.c.archived_at.is_(None),
                   or_(thread_consents.c.status.is_(None), thread_consents.c.status == "accepted"))
        )
        if network is not None:
            stmt = stmt.where(networks.c.name == network)
        if self._conn.dialect.name == "sqlite":
            match = sqlite_match(words)
            stmt = stmt.where(t.c.id.in_(select(text("rowid")).select_from(text("shared_message_fts")).where(
                text("shared_message_fts MATCH :match")))).params(match=match)
        else:
            document = func.to_tsvector(text("'simple'"), t.c.body)
            stmt = stmt.where(document.bool_op("@@")(func.plainto_tsquery(text("'simple'"), " ".join(words))))
        rows = await self._conn.execute(stmt.order_by(t.c.id.desc()).limit(limit))
        return [MessageHit(r.name, r.thread, r.event_id) for r in rows]
