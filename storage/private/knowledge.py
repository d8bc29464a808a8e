"""Knowledge items and full-text search over them, within what a reader may see.

Search is word-based on both backends (FTS5 `unicode61` on SQLite, the `simple` text search
configuration on PostgreSQL): every word of the query must appear. User input is reduced to
words before it reaches either engine, so query syntax in it is never interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import NotFound
from storage.private.tables import knowledge_items, knowledge_readers
from storage.results import inserted_id
from storage.search import search_words, sqlite_match

__all__ = ["KnowledgeItem", "KnowledgeRepository"]

@dataclass(frozen=True, slots=True)
class KnowledgeItem:
    id: int
    title: str
    body: str
    restricted: bool
    reader_ids: tuple[int, ...]
    created_at: int


class KnowledgeRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self, *, title: str, body: str, reader_ids: list[int] | None, now: int
    ) -> KnowledgeItem:
        """`reader_ids` None: every principal may read it; a list: only those principals."""
        restricted = reader_ids is not None
        result = await self._conn.execute(
            knowledge_items.insert().values(
                title=title, body=body, restricted=restricted, created_at=now
            )
        )
        item_id = inserted_id(result)
        readers = tuple(sorted(set(reader_ids or [])))
        if readers:
            await self._conn.execute(
                knowledge_readers.insert(),
                [{"item_id": item_id, "principal_id": p} for p in readers],
            )
        return KnowledgeItem(item_id, title, body, restricted, readers, now)

    async def page(self, *, after_id: int = 0, limit: int) -> list[KnowledgeItem]:
        rows = (
            await self._conn.execute(
                select(knowledge_items)
                .where(knowledge_items.c.id > after_id)
                .order_by(knowledge_items.c.id)
                .limit(limit)
            )
        ).all()
        return await self._with_readers(rows)

    async def delete(self, item_id: int) -> KnowledgeItem:
        """Remove an item and its readers (NotFound if there is none)."""
        found = await self._with_readers((await self._conn.execute(
            select(knowledge_items).where(knowledge_items.c.id == item_id))).all())
        if not found:
            raise NotFound("knowledge item", item_id)
        await self._conn.execute(delete(knowledge_readers).where(knowledge_readers.c.item_id == item_id))
        await self._conn.execute(delete(knowledge_items).where(knowledge_items.c.id == item_id))
        return found[0]

    async def texts_after(self, after_id: int, *, limit: int) -> list[tuple[int, str, str]]:
        """`(id, title, body)` of items after `after_id`, in id order: what the outbound guard indexes."""
        rows = await self._conn.execute(
            select(knowledge_items.c.id, knowledge_items.c.title, knowledge_items.c.body)
            .where(knowledge_items.c.id > after_id).order_by(knowledge_items.c.id).limit(limit))
        return [(r.id, r.title, r.body) for r in rows]

    async def search(
        self, query: str, *, reader_id: int | None, limit: int
    ) -> list[KnowledgeItem]:
        """Items matching every word of `query`; `reader_id` None searches everything."""
        words = search_words(query)
        if not words:
            return []
        stmt = select(knowledge_items)
        if self._conn.dialect.name == "sqlite":
            match = sqlite_match(words)
            stmt = stmt.where(
                knowledge_items.c.id.in_(
                    select(text("rowid")).select_from(text("knowledge_fts")).where(
                        text("knowledge_fts MATCH :match")
                    )
                )
            ).params(match=match)
        else:
            document = func.to_tsvector(
                text("'simple'"), knowledge_items.c.title + " " + knowledge_items.c.body
            )
            stmt = stmt.where(
                document.bool_op("@@")(func.plainto_tsquery(text("'simple'"), " ".join(words)))
            )
        if reader_id is not None:
            stmt = stmt.where(
                or_(
                    knowledge_items.c.restricted.is_(False),
                    exists().where(
                        knowledge_readers.c.item_id == knowledge_items.c.id,
                        knowledge_readers.c.principal_id == reader_id,
                    ),
                )
            )
        rows = (await self._conn.execute(stmt.order_by(knowledge_items.c.id).limit(limit))).all()
        return await self._with_readers(rows)

    async def _with_readers(self, rows) -> list[KnowledgeItem]:
        readers: dict[int, list[int]] = {r.id: [] for r in rows}
        if readers:
            pairs = await self._conn.execute(
                select(knowledge_readers).where(knowledge_readers.c.item_id.in_(list(readers)))
            )
            for pair in pairs:
                readers[pair.item_id].append(pair.principal_id)
        return [
            KnowledgeItem(
                r.id, r.title, r.body, r.restricted, tuple(sorted(readers[r.id])), r.created_at
            )
            for r in rows
        ]
