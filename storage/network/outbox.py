"""Outbound delivery rows: one per (event, destination), written with the event itself.

Claiming marks rows `in_flight`; on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several node
processes can share one queue without sending a row twice. Every change of a row's state is a
move declared in `storage.network.outbox_states` (`_moving` builds the statements from it).

Rows go out first in, first out per destination: one author's events reach the host in the
order this node accepted them. So rows carry no due time of their own (it is 0): when to try a
destination again is the destination's backoff (`delivery_status.next_attempt_at`), and a due
time further ahead than any backoff can be (`MAX_BACKOFF_MS`) can only come from a clock that
stepped back since it was written, so it counts as due.

A row is settled by its sender only while it is still in flight: a row that became
`delivered` meanwhile (the host's sequenced copy of the event arrived first) stays delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Update, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.network.outbox_states import OPEN_STATES, TRANSITIONS, DeliveryAction, DeliveryState
from storage.network.tables import delivery_status, network_events, outbox

__all__ = ["MAX_BACKOFF_MS", "OutboxItem", "OutboxRepository", "Refusal"]



def _moving(action: DeliveryAction, *where: ColumnElement[bool], **values: Any) -> Update:
    """The UPDATE that makes `action`'s move on the rows matching `where`: only rows in one of
    its source states move, to its target state, counting a try if the move does."""
    move = TRANSITIONS[action]
    changes: dict[str, Any] = {"state": move.target.value, **values}
    if move.counts_try:
        changes["tries"] = outbox.c.tries + 1
    sources = sorted(state.value for state in move.sources)
    return update(outbox).where(outbox.c.state.in_(sources), *where).values(**changes)


_PENDING = DeliveryState.PENDING.value
_IDS = outbox.c.id.in_(bindparam("ids", expanding=True))
# Statements run for every event are built once, with bind parameters (storage.storage says why).
_ENQUEUE = outbox.insert()
# Five minutes: the longest backoff (node.basics.backoff.RETRY_CAP_MS); a due time beyond it is a
# clock step, not a backoff.
MAX_BACKOFF_MS = 300_000
_NOW = bindparam("now", type_=BigInteger)
_NOT_BACKED_OFF = or_(delivery_status.c.next_attempt_at.is_(None), delivery_status.c.next_attempt_at <= _NOW,
                      delivery_status.c.next_attempt_at > _NOW + MAX_BACKOFF_MS)
_DUE = (
    select(outbox.c.destination)
    .outerjoin(delivery_status, delivery_status.c.server == outbox.c.destination)
    .where(outbox.c.state == _PENDING, outbox.c.next_attempt_at <= bindparam("now"), _NOT_BACKED_OFF)
    .distinct()
)
_CLAIM = (
    select(outbox.c.id, outbox.c.event_row_id, outbox.c.tries, outbox.c.created_at,
           network_events.c.event_id, network_events.c.wire)
    .join(network_events, network_events.c.id == outbox.c.event_row_id)
    .outerjoin(delivery_status, delivery_status.c.server == outbox.c.destination)
    .where(outbox.c.destination == bindparam("destination"), outbox.c.state == _PENDING,
           outbox.c.next_attempt_at <= bindparam("now"), _NOT_BACKED_OFF)
    .order_by(outbox.c.id)
    .limit(bindparam("max_count"))
)
_CLAIM_SKIP_LOCKED = _CLAIM.with_for_update(of=outbox, skip_locked=True)  # PostgreSQL: several node processes
_IN_FLIGHT = _moving(DeliveryAction.CLAIM, _IDS)
_DELIVERED = _moving(DeliveryAction.SUCCEED, _IDS, delivered_at=bindparam("now"), last_error=None)
_EVENT_DELIVERED = _moving(DeliveryAction.CONFIRM, outbox.c.event_row_id == bindparam("row"),
                           delivered_at=bindparam("now"), last_error=None)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    destination: str
    event_row_id: int
    event_id: str
    wire: bytes
    tries: int
    created_at: int  # when it was enqueued


@dataclass(frozen=True, slots=True)
class Refusal:
    destination: str
    event_id: str
    seq: int | None
    type: str
    error: str
    at: int | None


class OutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def enqueue(self, event_row_id: int, destinations: list[str], *, now: int) -> None:
        if destinations:
            await self._conn.execute(_ENQUEUE, [
                {"destination": d, "event_row_id": event_row_id, "state": _PENDING, "tries": 0,
                 "next_attempt_at": 0, "created_at": now}
                for d in sorted(set(destinations))
            ])

    async def due_destinations(self, now: int) -> list[str]:
        """Destinations with rows pending and no backoff in force (`delivery_status`)."""
        rows = await self._conn.execute(_DUE, {"now": now})
        return sorted(r.destination for r in rows)

    async def claim(self, destination: str, *, now: int, max_count: int, max_bytes: int) -> list[OutboxItem]:
        """The oldest due rows for `destination`, up to `max_count` rows and `max_bytes` of
        events (always at least one), marked in flight; none while the peer is backed off."""
        query = _CLAIM_SKIP_LOCKED if self._conn.dialect.name == "postgresql" else _CLAIM
        items: list[OutboxItem] = []
        size = 0
        for row in await self._conn.execute(query, {"destination": destination, "now": now, "max_count": max_count}):
            if items and size + len(row.wire) > max_bytes:
                break
            size += len(row.wire)
            items.append(OutboxItem(row.id, destination, row.event_row_id, row.event_id, row.wire, row.tries,
                                    row.created_at))
        if items:
            await self._conn.execute(_IN_FLIGHT, {"ids": [i.id for i in items]})
        return items

    async def delivered(self, ids: list[int], *, now: int) -> None:
        if ids:
            await self._conn.execute(_DELIVERED, {"ids": ids, "now": now})

    async def event_delivered(self, event_row_id: int, *, now: int) -> None:
        """The event reached where its rows were going (a member holds the host's sequenced copy
        of its own event): whatever a send still in flight says later."""
        await self._conn.execute(_EVENT_DELIVERED, {"row": event_row_id, "now": now})

    async def retry(self, ids: list[int], *, error: str) -> None:
        """Back to pending, one more try counted; the destination's backoff says when."""
        if ids:
            await self._conn.execute(_moving(DeliveryAction.RETRY, outbox.c.id.in_(ids), last_error=error[:500],
                                             next_attempt_at=0))

    async def reject(self, ids: list[int], *, error: str, now: int) -> None:
        if ids:
            await self._conn.execute(_moving(DeliveryAction.REJECT, outbox.c.id.in_(ids), last_error=error[:500],
                                             failed_at=now))

    async def requeue_in_flight(self) -> int:
        """After a restart nothing is in flight any more: send those rows again."""
        result = await self._conn.execute(_moving(DeliveryAction.REQUEUE))
        return result.rowcount

    async def depth(self) -> dict[str, int]:
        rows = await self._conn.execute(
            select(outbox.c.destination, func.count())
            .where(outbox.c.state.in_(sorted(state.value for state in OPEN_STATES)))
            .group_by(outbox.c.destination)
        )
        return {r[0]: r[1] for r in rows}

    async def states_for_events(self, event_row_ids: list[int]) -> dict[int, dict[str, str]]:
        result: dict[int, dict[str, str]] = {i: {} for i in event_row_ids}
        if event_row_ids:
            rows = await self._conn.execute(
                select(outbox.c.event_row_id, outbox.c.destination, outbox.c.state)
                .where(outbox.c.event_row_id.in_(event_row_ids))
            )
            for r in rows:
                result[r.event_row_id][r.destination] = r.state
        return result

    async def cancel(self, destination: str, *, error: str, now: int) -> None:
        """Drop what is still queued for a destination (blocked, left or removed)."""
        await self._conn.execute(_moving(DeliveryAction.CANCEL, outbox.c.destination == destination,
                                         last_error=error, failed_at=now))

    async def refusals(self, network_id: int, *, limit: int = 20) -> list[Refusal]:
        """The latest events of a network that a destination refused for good, and why."""
        rows = await self._conn.execute(
            select(outbox.c.destination, outbox.c.last_error, outbox.c.failed_at, network_events.c.event_id,
                   network_events.c.seq, network_events.c.type)
            .join(network_events, network_events.c.id == outbox.c.event_row_id)
            .where(network_events.c.network_id == network_id, outbox.c.state == DeliveryState.FAILED.value)
            .order_by(outbox.c.id.desc()).limit(limit))
        return [Refusal(r.destination, r.event_id, r.seq, r.type, r.last_error or "", r.failed_at) for r in rows]
