"""Private threads of the company: their members and messages. Never read by federation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import AlreadyExists, NotFound
from storage.private.tables import knowledge_items, private_messages, private_thread_members, private_threads
from storage.results import inserted_id

__all__ = ["PrivateMessage", "PrivateThread", "PrivateThreadRepository"]

# Read before every outbound guard check: built once (storage.storage says why).
_PRIVATE_HEADS = select(*(select(func.coalesce(func.max(t.c.id), 0)).scalar_subquery()
                          for t in (knowledge_items, private_threads, private_messages)))


@dataclass(frozen=True, slots=True)
class PrivateThread:
    id: int
    name: str
    title: str
    created_at: int
    member_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    id: int
    thread_id: int
    sender_id: int
    body: str
    created_at: int


class PrivateThreadRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(
        self, *, name: str, title: str, member_ids: list[int], now: int
    ) -> PrivateThread:
        taken = await self._conn.scalar(
            select(private_threads.c.id).where(private_threads.c.name == name)
        )
        if taken is not None:
            raise AlreadyExists("thread", name)
        try:  # the constraint still decides a race between two writers
            result = await self._conn.execute(
                private_threads.insert().values(name=name, title=title, created_at=now)
            )
        except IntegrityError:
            raise AlreadyExists("thread", name) from None
        thread_id = inserted_id(result)
        await self._insert_members(thread_id, member_ids)
        return PrivateThread(thread_id, name, title, now, tuple(sorted(set(member_ids))))

    async def set_members(self, thread_id: int, member_ids: list[int]) -> None:
        await self._conn.execute(
            delete(private_thread_members).where(private_thread_members.c.thread_id == thread_id)
        )
        await self._insert_members(thread_id, member_ids)

    async def _insert_members(self, thread_id: int, member_ids: list[int]) -> None:
        if member_ids:
            await self._conn.execute(
                private_thread_members.insert(),
                [{"thread_id": thread_id, "principal_id": p} for p in sorted(set(member_ids))],
            )

    async def get(self, name: str) -> PrivateThread:
        row = (
            await self._conn.execute(select(private_threads).where(private_threads.c.name == name))
        ).first()
        if row is None:
            raise NotFound("thread", name)
        members = await self._conn.scalars(
            select(private_thread_members.c.principal_id)
            .where(private_thread_members.c.thread_id == row.id)
            .order_by(private_thread_members.c.principal_id)
        )
        return PrivateThread(row.id, row.name, row.title, row.created_at, tuple(members))

    async def all(self, *, member_id: int | None = None) -> list[PrivateThread]:
        """All threads, or only those `member_id` belongs to, each with its members."""
        query = select(private_threads).order_by(private_threads.c.name)
        if member_id is not None:
            query = query.where(
                private_threads.c.id.in_(
                    select(private_thread_members.c.thread_id).where(
                        private_thread_members.c.principal_id == member_id
                    )
                )
            )
        rows = (await self._conn.execute(query)).all()
        members: dict[int, list[int]] = {row.id: [] for row in rows}
        if rows:
            pairs = await self._conn.execute(
                select(private_thread_members).where(
                    private_thread_members.c.thread_id.in_(list(members))
                )
            )
            for pair in pairs:
                members[pair.thread_id].append(pair.principal_id)
        return [
            PrivateThread(r.id, r.name, r.title, r.created_at, tuple(sorted(members[r.id])))
            for r in rows
        ]

    async def post(self, thread_id: int, *, sender_id: int, body: str, now: int) -> PrivateMessage:
        result = await self._conn.execute(
            private_messages.insert().values(
                thread_id=thread_id, sender_id=sender_id, body=body, created_at=now
            )
        )
        return PrivateMessage(inserted_id(result), thread_id, sender_id, body, now)

    async def messages(
        self, thread_id: int, *, after_id: int = 0, limit: int
    ) -> list[PrivateMessage]:
        """Messages in posting order, oldest first, strictly after `after_id`."""
        rows = await self._conn.execute(
            select(private_messages)
            .where(private_messages.c.thread_id == thread_id, private_messages.c.id > after_id)
            .order_by(private_messages.c.id)
            .limit(limit)
        )
        return [
            PrivateMessage(r.id, r.thread_id, r.sender_id, r.body, r.created_at) for r in rows
        ]

    async def messages_by_ids(self, ids: list[int]) -> dict[int, PrivateMessage]:
        if not ids:
            return {}
        rows = await self._conn.execute(select(private_messages).where(private_messages.c.id.in_(ids)))
        return {r.id: PrivateMessage(r.id, r.thread_id, r.sender_id, r.body, r.created_at) for r in rows}

    async def names_by_id(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = await self._conn.execute(
            select(private_threads.c.id, private_threads.c.name).where(private_threads.c.id.in_(ids)))
        return {r.id: r.name for r in rows}

    async def delete(self, thread_id: int) -> int:
        """Remove a thread with its members and messages; how many messages went."""
        count = await self.count_messages(thread_id)
        await self._conn.execute(delete(private_messages).where(private_messages.c.thread_id == thread_id))
        await self._conn.execute(delete(private_thread_members).where(private_thread_members.c.thread_id == thread_id))
        await self._conn.execute(delete(private_threads).where(private_threads.c.id == thread_id))
        return count

    async def texts_after(self, after_id: int, *, limit: int) -> list[tuple[int, int, str]]:
        """`(id, thread_id, body)` of messages in any thread after `after_id`, in id order."""
        rows = await self._conn.execute(
            select(private_messages.c.id, private_messages.c.thread_id, private_messages.c.body)
            .where(private_messages.c.id > after_id).order_by(private_messages.c.id).limit(limit))
        return [(r.id, r.thread_id, r.body) for r in rows]

    async def private_heads(self) -> tuple[int, int, int]:
        """The highest ids of knowledge items, private threads and private messages (0: none):
        one indexed lookup each, so the outbound guard can ask before every check what is new."""
        row = (await self._conn.execute(_PRIVATE_HEADS)).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def titles(self) -> list[tuple[int, str, str]]:
        """`(id, name, title)` of every private thread."""
        rows = await self._conn.execute(select(private_threads.c.id, private_threads.c.name, private_threads.c.title))
        return [(r.id, r.name, r.title) for r in rows]

    async def count_messages(self, thread_id: int) -> int:
        return (await self._conn.execute(
            select(func.count()).where(private_messages.c.thread_id == thread_id)
        )).scalar_one()
