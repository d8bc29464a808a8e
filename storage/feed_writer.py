"""Appending to the node's activity feed (`storage.feed` reads it): the one bridge from the
network side into a private table. A network transaction (`storage.network.transaction`)
carries a `FeedWriter` so that an event that arrives shows in local clients' feeds in the same
commit; the writer only appends pointer rows (network, thread, event row) and can read
nothing, so the federation path still cannot see a private row.
"""

from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.private.tables import client_feed, feed_state

__all__ = ["FeedWriter"]

# Every message's commit runs these: built once, with bind parameters (storage.storage says why).
_TAKE = (update(feed_state).where(feed_state.c.id == 1)
         .values(head=feed_state.c.head + bindparam("count")).returning(feed_state.c.head))
_APPEND = client_feed.insert()


class FeedWriter:
    """Appends only. The federation path gets this and cannot read the feed or any private
    table through it; `appended` tells the storage facade to wake readers after commit.

    Rows are written by `flush`, which the storage facade calls just before the transaction
    commits: a batch of events then takes its positions with one UPDATE and is written with
    one INSERT, instead of two statements per event, and the feed's head row is locked only
    for the last moment of the transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._rows: list[dict] = []
        self.appended = False

    async def append_network_event(self, *, network_id: int, thread: str | None, event_row: int, now: int) -> None:
        self._rows.append({"network_id": network_id, "thread": thread, "event_row": event_row,
                           "private_thread_id": None, "private_message_id": None, "created_at": now})

    async def append_private_message(self, *, thread_id: int, message_id: int, now: int) -> None:
        self._rows.append({"network_id": None, "thread": None, "event_row": None,
                           "private_thread_id": thread_id, "private_message_id": message_id, "created_at": now})

    async def flush(self) -> None:
        """Give the rows appended so far their positions, in the order appended, and write them."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        head = await self._conn.scalar(_TAKE, {"count": len(rows)})
        for position, row in enumerate(rows, start=head - len(rows) + 1):
            row["position"] = position
        await self._conn.execute(_APPEND, rows)
        self.appended = True
