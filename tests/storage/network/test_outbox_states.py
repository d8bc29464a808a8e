"""The delivery state machine (`storage.network.outbox_states`), and the outbox repository held
to it: on both backends, every repository call that changes rows changes them only by the
moves the table declares for it."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, update

from storage.network.outbox_states import (
    OPEN_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    DeliveryAction,
    DeliveryState,
    transition,
)
from storage.network.tables import outbox

S, A = DeliveryState, DeliveryAction
NOW = 1_700_000_000_000

LEGAL = {
    (S.PENDING, A.CLAIM): S.IN_FLIGHT,
    (S.IN_FLIGHT, A.SUCCEED): S.DELIVERED,
    (S.PENDING, A.CONFIRM): S.DELIVERED,
    (S.IN_FLIGHT, A.CONFIRM): S.DELIVERED,
    (S.FAILED, A.CONFIRM): S.DELIVERED,
    (S.IN_FLIGHT, A.RETRY): S.PENDING,
    (S.IN_FLIGHT, A.REJECT): S.FAILED,
    (S.IN_FLIGHT, A.REQUEUE): S.PENDING,
    (S.PENDING, A.CANCEL): S.FAILED,
    (S.IN_FLIGHT, A.CANCEL): S.FAILED,
}


@pytest.mark.parametrize("state,action", list(itertools.product(S, A)))
def test_every_move_is_either_declared_or_refused(state: S, action: A) -> None:
    if (state, action) in LEGAL:
        assert transition(state, action) == LEGAL[state, action]
        assert transition(state.value, action.value) == LEGAL[state, action]  # as stored
    else:
        with pytest.raises(ValueError, match="cannot"):
            transition(state, action)


def test_delivered_is_final_and_open_rows_are_the_queue() -> None:
    assert TERMINAL_STATES == {S.DELIVERED}
    assert OPEN_STATES == {S.PENDING, S.IN_FLIGHT}


def test_only_failed_attempts_count_as_tries() -> None:
    assert {a for a, t in TRANSITIONS.items() if t.counts_try} == {A.RETRY, A.REJECT}


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[A.CLAIM] = TRANSITIONS[A.SUCCEED]  # type: ignore[index]


@pytest.mark.parametrize("state,action", [("sent", "claim"), ("pending", "send"), ("", "")])
def test_unknown_names_are_refused(state: str, action: str) -> None:
    with pytest.raises(ValueError):
        transition(state, action)


# --- the repository makes only declared moves ------------------------------------------------


async def _rows_in_every_state(storage) -> dict[int, str]:
    """One event queued for a destination per state; returns row id -> state."""
    async with storage.network_transaction() as tx:
        network = await tx.networks.create(host="acme.example", name="acme-rollout", title="R", history_visible=True,
                                           now=NOW)
        states = {}
        for seq, state in enumerate(S, start=1):
            row = await tx.events.add(network_id=network.id, event_id=f"$e{seq}", seq=seq, type="message.posted",
                                      thread="t", sender="agent:ops@acme.example", origin="acme.example",
                                      origin_ts=NOW, wire=b"{}", now=NOW)
            await tx.outbox.enqueue(row, ["globex.example"], now=NOW)
            await tx.outbox._conn.execute(update(outbox).where(outbox.c.event_row_id == row).values(state=state.value))
        for r in await tx.outbox._conn.execute(select(outbox.c.id, outbox.c.state)):
            states[r.id] = r.state
    return states


async def _states(storage) -> dict[int, str]:
    async with storage.network_transaction(read_only=True) as tx:
        return {r.id: r.state for r in await tx.outbox._conn.execute(select(outbox.c.id, outbox.c.state))}


CALLS = {
    A.CLAIM: lambda tx, ids: tx.outbox.claim("globex.example", now=NOW, max_count=100, max_bytes=10**6),
    A.SUCCEED: lambda tx, ids: tx.outbox.delivered(ids, now=NOW),
    A.RETRY: lambda tx, ids: tx.outbox.retry(ids, error="timeout"),
    A.REJECT: lambda tx, ids: tx.outbox.reject(ids, error="403 forbidden", now=NOW),
    A.REQUEUE: lambda tx, ids: tx.outbox.requeue_in_flight(),
    A.CANCEL: lambda tx, ids: tx.outbox.cancel("globex.example", error="blocked", now=NOW),
}


@pytest.mark.parametrize("action", [*CALLS, A.CONFIRM])
async def test_each_call_makes_only_its_declared_move(storage, action: A) -> None:
    before = await _rows_in_every_state(storage)
    async with storage.network_transaction() as tx:
        if action == A.CONFIRM:
            for row in await tx.outbox._conn.execute(select(outbox.c.event_row_id)):
                await tx.outbox.event_delivered(row.event_row_id, now=NOW)
        else:
            await CALLS[action](tx, list(before))
    after = await _states(storage)
    moved = {before[i]: after[i] for i in before if after[i] != before[i]}
    declared = {s.value: t.value for (s, a), t in LEGAL.items() if a == action}
    assert moved == declared, (action, before, after)
