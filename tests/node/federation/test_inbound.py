"""Batches of the host's events at a member (`node.federation.inbound`), without sockets: what the
member already holds is answered as a duplicate and what lies past a gap as out of order,
both before any parsing, and everything else still meets the full checks."""

from __future__ import annotations

import pytest

import node.federation.inbound
from federation.canonical_json import parse_json
from federation.errors import ChainError, InvalidSignature
from federation.event_content import MessagePosted, ParticipantAttached, ThreadOpened
from node.basics.clock import SystemClock
from node.basics.errors import NetworkHalted, OutOfOrder
from node.federation.halting import HaltKeeper
from node.federation.inbound import InboundEvents
from tests.node.federation.test_engine import ACME, OPS, catch_up, pair  # noqa: F401 -- pair is a fixture

NETWORK = "acme-rollout"


class _NoRefresh:
    async def retrying(self, signers, network, attempt):
        return await attempt()

    async def confirm(self, server, key_id, public_key, endpoint):
        pass


@pytest.fixture
async def sides(pair):  # noqa: F811 -- the imported fixture
    acme, globex = pair
    await acme.author(NETWORK, ParticipantAttached(participant=OPS, display_name="Ops"))
    await acme.author(NETWORK, ThreadOpened(title="Status", participants=(OPS,)), thread="rollout-status")
    await catch_up(acme, globex)
    return acme, globex


async def _sent(acme, count: int) -> list[dict]:
    """The host's next `count` messages, as it would send them (it drops its own outbox rows)."""
    for n in range(count):
        await acme.author(NETWORK, MessagePosted(body=f"m{n}"), thread="rollout-status", sender=OPS)
    return (await acme.outgoing("globex.example"))[-count:]


class _Seen:
    def __init__(self) -> None:
        self.gaps: list[str] = []
        self.events: list[str] = []

    def inbound(self, globex) -> InboundEvents:
        return InboundEvents(globex.storage, globex.engine, _NoRefresh(),
                             HaltKeeper(globex.storage, SystemClock(), globex.engine.server),
                             on_gap=self.gaps.append, on_event=self.events.append)


async def _held(acme, globex, count: int) -> tuple[list[dict], _Seen]:
    """`count` new messages the member has applied, and what it reported of them."""
    wires, seen = await _sent(acme, count), _Seen()
    assert {r["status"] for r in await seen.inbound(globex).accept(wires, via=ACME)} == {200}
    return wires, seen


async def _head(side) -> int:
    async with side.storage.network_transaction() as tx:
        return (await tx.networks.get(NETWORK)).head_seq


async def test_a_resent_batch_is_answered_as_duplicates_without_being_parsed(sides, monkeypatch):
    acme, globex = sides
    wires = await _sent(acme, 3)
    seen = _Seen()
    first = await seen.inbound(globex).accept(wires, via=ACME)
    assert [r["status"] for r in first] == [200, 200, 200]
    head = await _head(globex)

    def no_parsing(wire):
        raise AssertionError("a held event was parsed")

    monkeypatch.setattr(node.federation.inbound, "_parse", no_parsing)
    again = await seen.inbound(globex).accept(wires, via=ACME)
    assert again == first == [{"event_id": "$" + w["hash"], "status": 200, "seq": w["seq"]} for w in wires]
    assert seen.events == ["accepted"] * 3 + ["duplicate"] * 3
    assert await _head(globex) == head


async def test_events_past_a_gap_are_refused_as_out_of_order_and_ask_for_catch_up(sides, monkeypatch):
    acme, globex = sides
    wires = await _sent(acme, 3)
    head = await _head(globex)
    seen = _Seen()
    results = await seen.inbound(globex).accept(wires[1:], via=ACME)
    assert [(r["status"], r["code"]) for r in results] == [(OutOfOrder.status, OutOfOrder.code)] * 2
    assert results[0]["message"] == f"expected seq {head + 1} of {NETWORK}, got {head + 2}"
    assert seen.gaps == [NETWORK, NETWORK] and seen.events == ["refused", "refused"]
    assert await _head(globex) == head
    assert [r["status"] for r in await seen.inbound(globex).accept(wires, via=ACME)] == [200, 200, 200]
    assert await _head(globex) == head + 3


async def test_a_batch_of_held_next_and_gapped_events_gets_each_its_own_answer(sides):
    acme, globex = sides
    wires = await _sent(acme, 4)
    seen = _Seen()
    await seen.inbound(globex).accept(wires[:1], via=ACME)
    results = await seen.inbound(globex).accept([wires[0], wires[1], wires[3]], via=ACME)
    assert [r["status"] for r in results] == [200, 200, OutOfOrder.status]
    assert sorted(seen.events) == ["accepted", "accepted", "duplicate", "refused"]
    assert await _head(globex) == wires[1]["seq"]


async def test_a_different_event_at_a_held_seq_still_meets_the_full_checks(sides):
    acme, globex = sides
    wires, seen = await _held(acme, globex, 2)
    forged = dict(wires[0], hash=wires[1]["hash"])  # another event's id at this place
    (result,) = await seen.inbound(globex).accept([forged], via=ACME)
    assert (result["status"], result["code"]) == (ChainError.status, ChainError.code)
    assert seen.events[-1] == "refused"


async def test_only_the_networks_host_is_answered_from_what_is_held(sides):
    acme, globex = sides
    wires, seen = await _held(acme, globex, 1)
    (result,) = await seen.inbound(globex).accept(wires, via="mallory.example")
    assert (result["status"], result["code"], result["reason"]) == (403, "forbidden", "wrong_relay")


async def test_a_retransmitted_transaction_gets_its_first_answer_again(sides):
    acme, globex = sides
    wires = await _sent(acme, 2)
    seen = _Seen()
    inbound = seen.inbound(globex)
    first = await inbound.answer("t1", wires[1:], via=ACME, now=1)  # a gap: refused for now
    assert [r["code"] for r in parse_json(first)["results"]] == [OutOfOrder.code]
    await inbound.accept(wires[:1], via=ACME)
    assert await inbound.answer("t1", wires[1:], via=ACME, now=2) == first  # the stored answer, not re-applied
    head = await _head(globex)
    again = parse_json(await inbound.answer("t2", wires[1:], via=ACME, now=3))
    assert [r["status"] for r in again["results"]] == [200] and await _head(globex) == head + 1


async def test_a_forged_event_in_a_large_batch_is_refused_and_nothing_after_it_applied(sides):
    # A batch this size has its signatures checked on threads first (PARALLEL_CHECKS_FROM).
    acme, globex = sides
    wires = await _sent(acme, node.federation.inbound.PARALLEL_CHECKS_FROM + 4)
    head = await _head(globex)
    forged = dict(wires[9], host_signature=dict(wires[9]["host_signature"], sig="A" * 86))
    results = await _Seen().inbound(globex).accept([*wires[:9], forged, *wires[10:]], via=ACME)
    assert [r["status"] for r in results[:9]] == [200] * 9
    assert (results[9]["status"], results[9]["code"]) == (InvalidSignature.status, InvalidSignature.code)
    assert {r["code"] for r in results[10:]} == {OutOfOrder.code}
    assert await _head(globex) == head + 9
    # The host's next event was refused: the member stopped following the network, and says so
    # to whatever the host pushes next, until the network is tried again (node.federation.halting).
    async with globex.storage.network_transaction() as tx:
        halt = await tx.halts.find((await tx.networks.get(NETWORK)).id)
    assert (halt.seq, halt.event_id, halt.code) == (head + 10, "$" + wires[9]["hash"], "invalid_signature")
    results = await _Seen().inbound(globex).accept(wires, via=ACME)
    assert [r["status"] for r in results[:9]] == [200] * 9  # what it holds is still answered
    assert {r["code"] for r in results[9:]} == {NetworkHalted.code} and await _head(globex) == head + 9
    # Tried again (as the catch-up worker does when the halt is due), the genuine events go in.
    results = await _Seen().inbound(globex).accept(wires, via=ACME, resuming=NETWORK)
    assert [r["status"] for r in results] == [200] * len(wires) and await _head(globex) == head + len(wires)
