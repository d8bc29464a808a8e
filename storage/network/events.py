"""The events of each network this node holds, in the host's order.

An event authored here whose host has not sequenced it yet is stored with `seq` null and
shown as pending; when the sequenced copy arrives the same row gets its number and wire form.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.outbox_states import OPEN_STATES
from storage.network.tables import network_events, outbox
from storage.results import inserted_id

__all__ = ["EventRepository", "StoredEvent"]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    row_id: int
    network_id: int
    event_id: str
    seq: int | None
    type: str
    thread: str | None
    sender: str
    origin: str
    origin_ts: int
    wire: bytes
    received_at: int


# Statements run for every event are built once, with bind parameters (storage.storage says why).
_ADD = network_events.insert()
_FIND = select(network_events).where(network_events.c.event_id == bindparam("event_id"))
_IDS_BETWEEN = select(network_events.c.seq, network_events.c.event_id).where(
    network_events.c.network_id == bindparam("network_id"),
    network_events.c.seq >= bindparam("first_seq"), network_events.c.seq <= bindparam("last_seq"),
)
_BY_ROW_IDS = select(network_events).where(network_events.c.id.in_(bindparam("row_ids", expanding=True)))


def _event(row) -> StoredEvent:
    return StoredEvent(
        row.id, row.network_id, row.event_id, row.seq, row.type, row.thread, row.sender,
        row.origin, row.origin_ts, row.wire, row.received_at,
    )


class EventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self, *, network_id: int, event_id: str, seq: int | None, type: str, thread: str | None,
        sender: str, origin: str, origin_ts: int, wire: bytes, now: int,
    ) -> int:
        result = await self._conn.execute(_ADD, {
            "network_id": network_id, "event_id": event_id, "seq": seq, "type": type, "thread": thread,
            "sender": sender, "origin": origin, "origin_ts": origin_ts, "wire": wire, "received_at": now,
        })
        return inserted_id(result)

    async def find(self, event_id: str) -> StoredEvent | None:
        row = (await self._conn.execute(_FIND, {"event_id": event_id})).first()
        return None if row is None else _event(row)

    async def ids_between(self, network_id: int, first_seq: int, last_seq: int) -> dict[int, str]:
        """`{seq: event_id}` of the sequenced events from `first_seq` to `last_seq`."""
        rows = await self._conn.execute(_IDS_BETWEEN, {"network_id": network_id, "first_seq": first_seq,
                                                       "last_seq": last_seq})
        return {r.seq: r.event_id for r in rows}

    async def by_row_ids(self, row_ids: list[int]) -> dict[int, StoredEvent]:
        if not row_ids:
            return {}
        rows = await self._conn.execute(_BY_ROW_IDS, {"row_ids": row_ids})
        return {r.id: _event(r) for r in rows}

    async def of_type(self, network_id: int, type_: str) -> list[StoredEvent]:
        """The network's sequenced events of one type, in order (few: lifecycle events)."""
        rows = await self._conn.execute(select(network_events).where(
            network_events.c.network_id == network_id, network_events.c.type == type_,
            network_events.c.seq.is_not(None)).order_by(network_events.c.seq))
        return [_event(r) for r in rows]

    async def messages_to_keep_as_stubs(self, network_id: int, *, after_row: int, limit: int) -> list[StoredEvent]:
        """Sequenced `message.*` events of the network, by row id, that no delivery still needs
        (retention: `node.networks.retention`)."""
        waiting = select(outbox.c.event_row_id).where(outbox.c.event_row_id == network_events.c.id,
                                                      outbox.c.state.in_(sorted(s.value for s in OPEN_STATES))).exists()
        rows = await self._conn.execute(select(network_events).where(
            network_events.c.network_id == network_id, network_events.c.id > after_row,
            network_events.c.type.like("message.%"), network_events.c.seq.is_not(None), ~waiting,
        ).order_by(network_events.c.id).limit(limit))
        return [_event(r) for r in rows]

    async def keep_as_stub(self, row_id: int, *, type_: str, wire: bytes) -> None:
        """Replace a stored event by its stub: the content goes, its id and place stay."""
        await self._conn.execute(update(network_events).where(network_events.c.id == row_id).values(
            type=type_, wire=wire))

    async def set_sequenced(self, row_id: int, *, seq: int, wire: bytes) -> None:
        await self._conn.execute(
            update(network_events).where(network_events.c.id == row_id).values(seq=seq, wire=wire)
        )

    async def after(self, network_id: int, after_seq: int, *, limit: int) -> list[StoredEvent]:
        rows = await self._conn.execute(
            select(network_events)
            .where(network_events.c.network_id == network_id, network_events.c.seq > after_seq)
            .order_by(network_events.c.seq)
            .limit(limit)
        )
        return [_event(r) for r in rows]

    async def pending(self, network_id: int) -> list[StoredEvent]:
        rows = await self._conn.execute(
            select(network_events)
            .where(network_events.c.network_id == network_id, network_events.c.seq.is_(None))
            .order_by(network_events.c.id)
        )
        return [_event(r) for r in rows]

    async def messages_before(self, network_id: int, thread: str, *, before_seq: int | None,
                              limit: int) -> list[StoredEvent]:
        """The `limit` sequenced messages of a thread just before `before_seq` (None: the newest),
        oldest first; only `message.posted`, so a page is full while more exist."""
        query = select(network_events).where(
            network_events.c.network_id == network_id, network_events.c.thread == thread,
            network_events.c.type == "message.posted", network_events.c.seq.is_not(None))
        if before_seq is not None:
            query = query.where(network_events.c.seq < before_seq)
        rows = await self._conn.execute(query.order_by(network_events.c.seq.desc()).limit(limit))
        return [_event(r) for r in reversed(rows.all())]

    async def pending_in_thread(self, network_id: int, thread: str) -> list[StoredEvent]:
        """This node's own messages of a thread the host has not sequenced yet, in order."""
        rows = await self._conn.execute(select(network_events).where(
            network_events.c.network_id == network_id, network_events.c.thread == thread,
            network_events.c.type == "message.posted", network_events.c.seq.is_(None)).order_by(network_events.c.id))
        return [_event(r) for r in rows]

    async def changes_in_thread(self, network_id: int, thread: str) -> list[StoredEvent]:
        """The thread's edits, deletes and reactions, sequenced first in order, then pending ones (ours)."""
        rows = await self._conn.execute(select(network_events).where(
            network_events.c.network_id == network_id, network_events.c.thread == thread,
            network_events.c.type.in_(("message.edited", "message.deleted", "message.reacted")),
        ).order_by(network_events.c.id))
        found = [_event(r) for r in rows]
        return sorted(found, key=lambda e: (e.seq is None, e.seq or 0, e.row_id))

    async def is_deleted(self, network_id: int, thread: str | None, event_id: str, *,
                         sequenced_only: bool = False) -> bool:
        """Whether a `message.deleted` for `event_id` is stored (deletes are rare: a scan of
        the thread's deletions is cheap). `sequenced_only`: only deletes in the host's order, not
        this node's own pending one (which is the very event a returning copy may be)."""
        rows = await self._conn.execute(
            select(network_events.c.wire).where(
                network_events.c.network_id == network_id,
                network_events.c.thread == thread,
                network_events.c.type == "message.deleted",
                *([network_events.c.seq.is_not(None)] if sequenced_only else []),
            )
        )
        needle = f'"event_id":"{event_id}"'.encode()
        return any(needle in r.wire for r in rows)

    async def in_thread(
        self, network_id: int, thread: str, *, after_seq: int, limit: int, include_pending: bool
    ) -> list[StoredEvent]:
        """Sequenced events of a thread after `after_seq`; pending ones (ours, not yet
        sequenced) follow on the last page."""
        rows = [
            _event(r)
            for r in await self._conn.execute(
                select(network_events)
                .where(
                    network_events.c.network_id == network_id,
                    network_events.c.thread == thread,
                    network_events.c.seq > after_seq,
                )
                .order_by(network_events.c.seq)
                .limit(limit)
            )
        ]
        if include_pending and len(rows) < limit:
            pending = await self._conn.execute(
                select(network_events)
                .where(
                    network_events.c.network_id == network_id,
                    network_events.c.thread == thread,
                    network_events.c.seq.is_(None),
                )
                .order_by(network_events.c.id)
                .limit(limit - len(rows))
            )
            rows += [_event(r) for r in pending]
        return rows
