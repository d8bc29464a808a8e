"""The federation engine without sockets: two nodes' storage in one process, outbox rows
carried across by hand, so each step's effect on both copies can be checked."""

from __future__ import annotations

import pytest

from federation.canonical_json import parse_json
from federation.errors import ChainError, InvalidSignature, RuleViolation
from federation.event_content import (
    MemberAdmitted,
    MemberRemoved,
    MessagePosted,
    ParticipantAttached,
    ThreadOpened,
)
from federation.events import Event, SignedEvent, sign_event
from federation.identifiers import ParticipantId
from federation.keys import SigningKey
from federation.sequencing import SequencedEvent, sequence_event
from node.basics.errors import OutOfOrder
from node.federation.chain_state import StateCache
from node.federation.engine import FederationEngine
from node.federation.key_ring import KeyRing
from storage.storage import Storage
from tests.node.conftest import FakeClock

ACME, GLOBEX = "acme.example", "globex.example"
OPS = ParticipantId.parse("agent:ops@acme.example")
DELIVERY = ParticipantId.parse("agent:delivery@globex.example")


class Side:
    def __init__(self, server: str, storage: Storage, clock: FakeClock) -> None:
        self.server = server
        self.storage = storage
        self.key = SigningKey.generate()
        self.engine = FederationEngine(KeyRing(server, self.key), clock, StateCache())
        self.operator = ParticipantId("operator", "admin", server)

    async def author(self, network: str, content, *, thread=None, sender=None):
        async with self.storage.network_transaction() as tx:
            return await self.engine.author(tx, network, thread=thread, sender=sender or self.operator,
                                            content=content)

    async def outgoing(self, destination: str) -> list[dict]:
        async with self.storage.network_transaction() as tx:
            items = await tx.outbox.claim(destination, now=2**62, max_count=1000, max_bytes=2**40)
            await tx.outbox.delivered([i.id for i in items], now=0)
        return [parse_json(i.wire) for i in items]

    async def messages(self, network: str) -> list[tuple[int | None, str]]:
        async with self.storage.network_transaction() as tx:
            net = await tx.networks.get(network)
            events = await tx.events.in_thread(net.id, "rollout-status", after_seq=0, limit=100, include_pending=True)
        return [(e.seq, parse_json(e.wire)["event"]["content"]["body"]) for e in events if e.type == "message.posted"]


async def catch_up(host: Side, member: Side, network: str = "acme-rollout") -> list[int]:
    async with member.storage.network_transaction() as tx:
        head = (await tx.networks.get(network)).head_seq
    async with host.storage.network_transaction() as tx:
        events = await tx.events.after((await tx.networks.get(network)).id, head, limit=1000)
    await deliver_wires(member, [parse_json(e.wire) for e in events])
    return [e.seq for e in events]


async def deliver(src: Side, dst: Side) -> list:
    results = []
    for wire in await src.outgoing(dst.server):
        async with dst.storage.network_transaction() as tx:
            if "seq" in wire:
                results.append(await dst.engine.accept_sequenced(tx, SequencedEvent.from_wire(wire), via=src.server))
            else:
                results.append(await dst.engine.accept_submission(tx, SignedEvent.from_wire(wire), via=src.server))
    return results


@pytest.fixture
async def pair(tmp_path):
    clock = FakeClock()
    stores = [await Storage.open(f"sqlite:///{tmp_path / name}.db") for name in ("acme", "globex")]
    acme, globex = Side(ACME, stores[0], clock), Side(GLOBEX, stores[1], clock)
    for me, other in ((acme, globex), (globex, acme)):  # what invite + accept will set up
        async with me.storage.network_transaction() as tx:
            await tx.peers.upsert(other.server, status="accepted", endpoint="https://x", now=0)
            await tx.peers.pin_key(other.server, key_id=other.key.key_id, public_key=other.key.verify_key.raw,
                                   valid_until=None, now=0)
    async with acme.storage.network_transaction() as tx:
        await acme.engine.create_network(tx, name="acme-rollout", title="Rollout", history_visible=True,
                                         sender=acme.operator)
    async with globex.storage.network_transaction() as tx:
        await tx.networks.create(host=ACME, name="acme-rollout", title="Rollout", history_visible=True, now=0)
    await acme.author("acme-rollout", MemberAdmitted(server=GLOBEX, key_id=globex.key.key_id,
                                                     public_key=globex.key.verify_key.to_base64()))
    yield acme, globex
    for store in stores:
        await store.close()


async def _setup_thread(acme: Side, globex: Side) -> None:
    await acme.author("acme-rollout", ParticipantAttached(participant=OPS, display_name="Ops"))
    await globex.author("acme-rollout", ParticipantAttached(participant=DELIVERY, display_name="Delivery"))
    await deliver(globex, acme)
    await acme.author("acme-rollout", ThreadOpened(title="Status", participants=(OPS, DELIVERY)),
                      thread="rollout-status")


async def test_member_catches_history_and_both_converge(pair):
    acme, globex = pair
    queued = await acme.outgoing(GLOBEX)
    assert [w["seq"] for w in queued] == [2]  # only member.admitted was fanned out to globex
    assert await catch_up(acme, globex) == [1, 2]  # network.created was never queued for globex
    await _setup_thread(acme, globex)
    assert [r.seq for r in await deliver(acme, globex)] == [3, 4, 5]
    await acme.author("acme-rollout", MessagePosted(body="from acme"), thread="rollout-status", sender=OPS)
    await globex.author("acme-rollout", MessagePosted(body="from globex"), thread="rollout-status", sender=DELIVERY)
    assert await globex.messages("acme-rollout") == [(None, "from globex")]  # pending on the member
    await deliver(globex, acme)
    await deliver(acme, globex)
    assert await acme.messages("acme-rollout") == await globex.messages("acme-rollout") == [
        (6, "from acme"), (7, "from globex")]
    async with acme.storage.network_transaction() as a, globex.storage.network_transaction() as g:
        assert (await a.networks.get("acme-rollout")).head_hash == (await g.networks.get("acme-rollout")).head_hash


async def test_redelivery_is_a_duplicate_and_gaps_are_refused(pair):
    acme, globex = pair
    (admitted,) = await acme.outgoing(GLOBEX)
    async with globex.storage.network_transaction() as tx:
        with pytest.raises(OutOfOrder):
            await globex.engine.accept_sequenced(tx, SequencedEvent.from_wire(admitted), via=ACME)
    await catch_up(acme, globex)
    async with globex.storage.network_transaction() as tx:
        result = await globex.engine.accept_sequenced(tx, SequencedEvent.from_wire(admitted), via=ACME)
    assert result.duplicate and result.seq == 2


async def test_member_refuses_what_the_rules_refuse_before_storing(pair):
    acme, globex = pair
    await catch_up(acme, globex)
    await acme.outgoing(GLOBEX)
    with pytest.raises(RuleViolation) as info:
        await globex.author("acme-rollout", MemberRemoved(server=ACME))
    assert info.value.reason == "not_host"
    with pytest.raises(RuleViolation):
        await globex.author("acme-rollout", MessagePosted(body="x"), thread="rollout-status", sender=DELIVERY)
    assert await globex.outgoing(ACME) == []


async def test_forged_or_rewritten_history_is_refused(pair):
    acme, globex = pair
    async with acme.storage.network_transaction() as tx:
        wires = [parse_json(e.wire) for e in await tx.events.after(1, 0, limit=10)]
    tampered = dict(wires[0], seq=1)
    tampered["event"] = dict(tampered["event"], origin_ts=tampered["event"]["origin_ts"] + 1)
    async with globex.storage.network_transaction() as tx:
        with pytest.raises(InvalidSignature):
            await globex.engine.accept_sequenced(tx, SequencedEvent.from_wire(tampered), via=ACME)
    await deliver_wires(globex, wires)
    # The host signs a different event at an existing position: a fork.
    other = Event("acme-rollout", None, acme.operator, ACME, 1, MemberAdmitted(server="initech.example",
                                                                       key_id=acme.key.key_id,
                                                                       public_key=acme.key.verify_key.to_base64()))
    fork = sequence_event(sign_event(other, acme.key), seq=2,
                          prev_hash=SequencedEvent.from_wire(wires[0]).link_hash, host=ACME,
                          host_ts=SequencedEvent.from_wire(wires[0]).host_ts, host_key=acme.key)
    async with globex.storage.network_transaction() as tx:
        with pytest.raises(ChainError):
            await globex.engine.accept_sequenced(tx, fork, via=ACME)


async def deliver_wires(dst: Side, wires: list[dict]) -> None:
    for wire in wires:
        async with dst.storage.network_transaction() as tx:
            await dst.engine.accept_sequenced(tx, SequencedEvent.from_wire(wire), via=ACME)


async def test_housekeeping_forgets_expired_nonces_and_old_answers(tmp_path):
    from node.main.housekeeping import TRANSACTION_MEMORY_MS, HousekeepingWorker

    clock = FakeClock()
    storage = await Storage.open(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        now = clock.now
        async with storage.network_transaction() as tx:
            await tx.inbound.remember_nonce("a.example", "old-nonce-old-nonce", expires_at=now - 1)
            await tx.inbound.remember_nonce("a.example", "new-nonce-new-nonce", expires_at=now + 10_000)
            await tx.inbound.save_transaction_response("a.example", "t-old", b"{}", now=now - TRANSACTION_MEMORY_MS - 1)
            await tx.inbound.save_transaction_response("a.example", "t-new", b"{}", now=now)
        forgotten = await HousekeepingWorker(storage, clock, feed_retention_ms=3600_000).run_once()
        assert (forgotten["nonces"], forgotten["transaction answers"]) == (1, 1)
        async with storage.network_transaction() as tx:
            assert not await tx.inbound.remember_nonce("a.example", "new-nonce-new-nonce", expires_at=now)
            assert await tx.inbound.transaction_response("a.example", "t-new") == b"{}"
    finally:
        await storage.close()


async def test_a_post_whose_sequenced_copy_is_back_is_delivered_whatever_a_late_answer_says(pair):
    """Fault-injection finding 3: the host sequenced a member's post but its answer was lost;
    the sequenced copy reached the member first, and the late retry's refusal turned the post
    into "failed" although it was on every node."""
    acme, globex = pair
    await catch_up(acme, globex)
    await _setup_thread(acme, globex)
    await deliver(acme, globex)
    posted = await globex.author("acme-rollout", MessagePosted(body="mine"), thread="rollout-status",
                                 sender=DELIVERY)
    async with globex.storage.network_transaction() as tx:  # the send is in flight...
        (item,) = await tx.outbox.claim(ACME, now=2**62, max_count=10, max_bytes=2**40)
    async with acme.storage.network_transaction() as tx:  # ...the host sequences it, its answer is lost...
        await acme.engine.accept_submission(tx, SignedEvent.from_wire(parse_json(item.wire)), via=GLOBEX)
    await deliver(acme, globex)  # ...and its fan-out comes back first.
    async with globex.storage.network_transaction() as tx:  # then the late answer refuses it for good
        await tx.outbox.reject([item.id], error="403 forbidden: only the network's host sends sequenced events",
                               now=0)
        await tx.outbox.retry([item.id], error="timeout")
        row = (await tx.events.find(posted.event_id)).row_id
        assert (await tx.outbox.states_for_events([row]))[row] == {ACME: "delivered"}
        assert await tx.outbox.claim(ACME, now=2**62, max_count=10, max_bytes=2**40) == []  # nothing to resend
