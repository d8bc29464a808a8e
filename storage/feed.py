"""The node's activity feed: what local clients are shown, in commit order.

Writers take positions with `UPDATE feed_state SET head = head + n ... RETURNING`, inside the
transaction that stores the message or event. The row lock that UPDATE takes is held until
commit, so a second writer gets its positions only after the first has committed: positions
become visible in order and a reader's cursor never passes a row that commits later. That is
the property a plain sequence lacks when several processes write to one PostgreSQL.

The feed holds pointers, not content. A reader hydrates visible rows from the event and
message tables, so a pruned or deleted source simply drops out. Rows are written by
`storage.feed_writer`, the one bridge from the network side into a private table.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.events import StoredEvent
from storage.network.tables import (
    network_events,
    network_participants,
    networks,
    shared_thread_participants,
    shared_threads,
)
from storage.private.tables import client_feed, feed_state, private_thread_members

__all__ = ["FeedEntry", "FeedRepository"]


def _visible_after():
    """Rows after `after` that principal `principal_id` (participant `participant`) may see."""
    f = client_feed
    private = and_(f.c.private_thread_id.is_not(None), exists().where(
        private_thread_members.c.thread_id == f.c.private_thread_id,
        private_thread_members.c.principal_id == bindparam("principal_id"),
    ))
    in_thread = and_(f.c.thread.is_not(None), exists().where(
        shared_threads.c.network_id == f.c.network_id,
        shared_threads.c.name == f.c.thread,
        shared_thread_participants.c.thread_id == shared_threads.c.id,
        shared_thread_participants.c.participant == bindparam("participant"),
    ))
    network_wide = and_(f.c.network_id.is_not(None), f.c.thread.is_(None), exists().where(
        network_participants.c.network_id == f.c.network_id,
        network_participants.c.participant == bindparam("participant"),
        network_participants.c.attached.is_(True),
    ))
    # Shared rows come with their event and network name, so a reader needs no second query.
    return (select(f, *_EVENT_COLUMNS, networks.c.name.label("network_name"))
            .select_from(f.outerjoin(network_events, network_events.c.id == f.c.event_row)
                         .outerjoin(networks, networks.c.id == f.c.network_id))
            .where(f.c.position > bindparam("after"), or_(private, in_thread, network_wide))
            .order_by(f.c.position).limit(bindparam("limit")))


_EVENT_COLUMNS = [c.label(f"event_{c.name}") for c in network_events.c]


# Every message's commit and every stream's wake run these: built once, with bind
# parameters (storage.storage says why).
_BOUNDS = select(feed_state.c.floor, feed_state.c.head).where(feed_state.c.id == 1)
_VISIBLE_AFTER = _visible_after()


@dataclass(frozen=True, slots=True)
class FeedEntry:
    position: int
    network_id: int | None
    thread: str | None
    event_row: int | None
    private_thread_id: int | None
    private_message_id: int | None
    created_at: int
    event: StoredEvent | None = None  # a shared row's event, if it is still stored
    network_name: str | None = None


def _joined_event(row) -> StoredEvent | None:
    if row.event_id is None:
        return None
    return StoredEvent(row.event_id, row.event_network_id, row.event_event_id, row.event_seq, row.event_type,
                       row.event_thread, row.event_sender, row.event_origin, row.event_origin_ts, row.event_wire,
                       row.event_received_at)


class FeedRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def bounds(self) -> tuple[int, int]:
        """(floor, head): positions at or below the floor were pruned; head is the newest."""
        row = (await self._conn.execute(_BOUNDS)).one()
        return row.floor, row.head

    async def visible_after(self, after: int, *, principal_id: int, participant: str, limit: int) -> list[FeedEntry]:
        """Rows after `after` that the principal may see now: private threads it belongs to,
        shared threads it takes part in, and network-wide events of networks it is attached to."""
        rows = await self._conn.execute(_VISIBLE_AFTER, {"after": after, "principal_id": principal_id,
                                                          "participant": participant, "limit": limit})
        return [FeedEntry(r.position, r.network_id, r.thread, r.event_row, r.private_thread_id,
                          r.private_message_id, r.created_at, _joined_event(r), r.network_name) for r in rows]

    async def prune(self, *, created_before: int, keep_after: int | None) -> int:
        """Forget rows older than `created_before`, but none after `keep_after` (a webhook still
        delivering from there). Raises the floor so a cursor below it is answered 410."""
        cut = await self._conn.scalar(select(func.max(client_feed.c.position)).where(
            client_feed.c.created_at < created_before))
        if cut is None:
            return 0
        if keep_after is not None:
            cut = min(cut, keep_after)
        floor, _head = await self.bounds()
        if cut <= floor:
            return 0
        result = await self._conn.execute(delete(client_feed).where(client_feed.c.position <= cut))
        await self._conn.execute(update(feed_state).where(feed_state.c.id == 1).values(floor=cut))
        return result.rowcount

    async def threads_after(self, after: int, *, upto: int, limit: int) -> list[tuple[int, str, str]]:
        """(position, network name, thread) of shared-thread rows in (after, upto], in order:
        which threads changed, for those who follow a thread without reading its events here."""
        rows = await self._conn.execute(
            select(client_feed.c.position, networks.c.name, client_feed.c.thread)
            .join(networks, networks.c.id == client_feed.c.network_id)
            .where(client_feed.c.position > after, client_feed.c.position <= upto, client_feed.c.thread.is_not(None))
            .order_by(client_feed.c.position).limit(limit))
        return [(r.position, r.name, r.thread) for r in rows]
