"""Network-side repositories on SQLite and PostgreSQL."""

import pytest

from storage.audit_writer import AuditWriter
from storage.errors import AlreadyExists, NotFound
from storage.network.outbox import MAX_BACKOFF_MS
from storage.network.peers import Invite

NOW = 1_700_000_000_000


async def _network(storage, name="acme-rollout"):
    async with storage.network_transaction() as tx:
        return await tx.networks.create(host="acme.example", name=name, title="Rollout", history_visible=True, now=NOW)


async def _event(tx, network_id, event_id, seq, thread="rollout-status", wire=b"{}"):
    return await tx.events.add(network_id=network_id, event_id=event_id, seq=seq, type="message.posted", thread=thread,
                               sender="agent:ops@acme.example", origin="acme.example", origin_ts=NOW, wire=wire, now=NOW)


async def test_network_names_are_unique_and_projections_round_trip(storage):
    net = await _network(storage)
    with pytest.raises(AlreadyExists):
        await _network(storage)
    async with storage.network_transaction() as tx:
        assert (await tx.networks.get("acme-rollout", for_update=True)).id == net.id
        with pytest.raises(NotFound):
            await tx.networks.get("nope")
        await tx.networks.set_member(net.id, "acme.example", "member", now=NOW)
        await tx.networks.set_member(net.id, "globex.example", "member", now=NOW)
        await tx.networks.set_member(net.id, "globex.example", "left", now=NOW)
        assert await tx.networks.members(net.id) == {"acme.example": "member", "globex.example": "left"}
        await tx.networks.set_participant(net.id, "agent:ops@acme.example", display_name="Ops", attached=True)
        await tx.networks.set_participant(net.id, "agent:ops@acme.example", display_name="Ops", attached=False)
        assert await tx.networks.participants(net.id) == {"agent:ops@acme.example": ("Ops", False)}
        await tx.networks.open_thread(net.id, name="rollout-status", title="Status",
                                      participants=["agent:ops@acme.example", "person:sam@globex.example"], now=NOW)
        await tx.networks.close_thread(net.id, "rollout-status")
        (thread,) = await tx.networks.threads_of_participant("person:sam@globex.example")
        assert (thread.network, thread.name, thread.closed) == ("acme-rollout", "rollout-status", True)
        assert await tx.networks.threads_of_participant("person:nobody@x.example") == []
        await tx.networks.set_head(net.id, seq=3, link_hash=b"h" * 32, host_ts=NOW + 3)
        assert (await tx.networks.get("acme-rollout")).head_seq == 3
    async with storage.network_transaction() as tx:  # the moved head was written at commit
        head = await tx.networks.get("acme-rollout")
        assert (head.head_seq, head.head_hash, head.head_ts) == (3, b"h" * 32, NOW + 3)


async def test_a_moved_head_is_written_once_at_commit_and_not_at_all_on_rollback(storage):
    net = await _network(storage)
    with pytest.raises(RuntimeError):
        async with storage.network_transaction() as tx:
            await tx.networks.set_head(net.id, seq=1, link_hash=b"a" * 32, host_ts=NOW)
            raise RuntimeError("before commit")
    async with storage.network_transaction() as tx:
        assert (await tx.networks.get("acme-rollout")).head_seq == 0
        for seq in (1, 2, 3):
            await tx.networks.set_head(net.id, seq=seq, link_hash=bytes([seq]) * 32, host_ts=NOW + seq)
        assert (await tx.networks.find("acme-rollout", for_update=True)).head_seq == 3
    async with storage.network_transaction() as tx:
        head = await tx.networks.get("acme-rollout")
        assert (head.head_seq, head.head_hash) == (3, b"\3" * 32)


async def test_events_pending_then_sequenced_and_thread_pages(storage):
    net = await _network(storage)
    async with storage.network_transaction() as tx:
        for seq in (1, 2, 3):
            await _event(tx, net.id, f"$e{seq}", seq)
        pending_row = await _event(tx, net.id, "$p", None)
        page = await tx.events.in_thread(net.id, "rollout-status", after_seq=0, limit=10, include_pending=True)
        assert [e.event_id for e in page] == ["$e1", "$e2", "$e3", "$p"]
        page = await tx.events.in_thread(net.id, "rollout-status", after_seq=1, limit=2, include_pending=True)
        assert [e.event_id for e in page] == ["$e2", "$e3"]
        await tx.events.set_sequenced(pending_row, seq=4, wire=b"{1}")
        assert [e.seq for e in await tx.events.after(net.id, 2, limit=10)] == [3, 4]
        assert await tx.events.pending(net.id) == []
        assert (await tx.events.find("$p")).wire == b"{1}"
        assert await tx.events.find("$none") is None


async def test_outbox_claim_retry_reject_and_restart(storage):
    net = await _network(storage)
    async with storage.network_transaction() as tx:
        rows = [await _event(tx, net.id, f"$e{i}", i, wire=b"x" * 100) for i in range(1, 6)]
        for row in rows:
            await tx.outbox.enqueue(row, ["globex.example", "initech.example"], now=NOW)
        assert await tx.outbox.depth() == {"globex.example": 5, "initech.example": 5}
        assert await tx.outbox.due_destinations(NOW) == ["globex.example", "initech.example"]
        batch = await tx.outbox.claim("globex.example", now=NOW, max_count=10, max_bytes=250)
        assert [i.event_id for i in batch] == ["$e1", "$e2"]  # bounded by bytes
        again = await tx.outbox.claim("globex.example", now=NOW, max_count=2, max_bytes=10)
        assert [i.event_id for i in again] == ["$e3"]  # at least one, even over the byte bound
        await tx.outbox.delivered([batch[0].id], now=NOW)
        await tx.outbox.reject([batch[1].id], error="refused", now=NOW)
        await tx.outbox.retry([again[0].id], error="timeout")
        # First in, first out: the retried row goes before the rows behind it.
        assert [i.event_id for i in await tx.outbox.claim("globex.example", now=NOW, max_count=10, max_bytes=10**6)] \
            == ["$e3", "$e4", "$e5"]
        assert await tx.outbox.requeue_in_flight() == 3
        later = await tx.outbox.claim("globex.example", now=NOW + 1000, max_count=10, max_bytes=10**6)
        assert [(i.event_id, i.tries) for i in later] == [("$e3", 1), ("$e4", 0), ("$e5", 0)]
        states = await tx.outbox.states_for_events([rows[0], rows[1]])
        assert states[rows[0]] == {"globex.example": "delivered", "initech.example": "pending"}
        assert states[rows[1]]["globex.example"] == "failed"
        # Settling touches only rows still in flight: a row the event's arrival made delivered
        # stays delivered, whatever a late answer says.
        await tx.outbox.event_delivered(rows[3], now=NOW)
        await tx.outbox.reject([later[1].id], error="late refusal", now=NOW)
        await tx.outbox.retry([later[1].id], error="late timeout")
        assert (await tx.outbox.states_for_events([rows[3]]))[rows[3]]["globex.example"] == "delivered"
        await tx.outbox.cancel("initech.example", error="blocked", now=NOW)
        assert await tx.outbox.depth() == {"globex.example": 2}
        refusals = [(r.destination, r.event_id, r.error) for r in await tx.outbox.refusals(net.id)]
        assert ("globex.example", "$e2", "refused") in refusals and ("initech.example", "$e1", "blocked") in refusals


async def test_a_backoff_due_further_ahead_than_any_backoff_counts_as_due(storage):
    """A wall clock that stepped back leaves a due time far ahead: it is not a backoff."""
    net = await _network(storage)
    async with storage.network_transaction() as tx:
        await tx.outbox.enqueue(await _event(tx, net.id, "$e1", 1), ["globex.example"], now=NOW)
        await tx.peers.back_off("globex.example", next_attempt_at=NOW + 2000)
        assert await tx.outbox.due_destinations(NOW) == []
        assert await tx.outbox.due_destinations(NOW + 2000) == ["globex.example"]
        await tx.peers.back_off("globex.example", next_attempt_at=NOW + MAX_BACKOFF_MS + 1)
        assert await tx.outbox.due_destinations(NOW) == ["globex.example"]
        assert len(await tx.outbox.claim("globex.example", now=NOW, max_count=10, max_bytes=10**6)) == 1


async def test_peers_keys_invites_and_delivery_status(storage):
    async with storage.network_transaction() as tx:
        assert await tx.peers.find("globex.example") is None
        await tx.peers.upsert("globex.example", status="accepted", endpoint="https://127.0.0.1:1", now=NOW)
        await tx.peers.upsert("globex.example", status="blocked", endpoint=None, now=NOW + 1)
        peer = await tx.peers.find("globex.example")
        assert (peer.status, peer.endpoint) == ("blocked", "https://127.0.0.1:1")
        await tx.peers.upsert("initech.example", status="accepted", endpoint="https://127.0.0.1:2", now=NOW)
        assert await tx.peers.blocked_among(["initech.example", "globex.example", "nobody.example"]) == {
            "globex.example"}
        assert await tx.peers.blocked_among(["initech.example"]) == set()
        await tx.peers.pin_key("globex.example", key_id="ed25519:a", public_key=b"k" * 32, valid_until=None, now=NOW)
        await tx.peers.pin_key("globex.example", key_id="ed25519:a", public_key=b"k" * 32, valid_until=NOW, now=NOW)
        with pytest.raises(ValueError):
            await tx.peers.pin_key("globex.example", key_id="ed25519:a", public_key=b"z" * 32, valid_until=None, now=NOW)
        assert [(k.key_id, k.valid_until) for k in await tx.peers.keys("globex.example")] == [("ed25519:a", NOW)]
        invite = Invite("inv1", "incoming", "acme-rollout", "acme.example", "Rollout", "acme.example",
                        "https://acme", "ed25519:b", b"b" * 32, "pending", NOW, NOW + 10, NOW)
        await tx.peers.add_invite(invite)
        assert await tx.peers.count_pending_incoming("acme.example") == 1
        await tx.peers.set_invite_status("inv1", "accepted", now=NOW + 1)
        assert (await tx.peers.invite("inv1")).status == "accepted"
        assert await tx.peers.invites(direction="incoming", status="pending") == []
        assert (await tx.peers.delivery("globex.example")).failures == 0
        assert await tx.peers.record_failure("globex.example", error="refused", next_attempt_at=NOW + 5, now=NOW) == 1
        assert await tx.peers.record_failure("globex.example", error="refused", next_attempt_at=NOW + 9, now=NOW) == 2
        await tx.peers.record_success("globex.example", now=NOW + 10)
        status = await tx.peers.delivery("globex.example")
        assert (status.failures, status.last_success_at, status.last_error) == (0, NOW + 10, "refused")


async def test_nonces_and_transaction_answers(storage):
    async with storage.network_transaction() as tx:
        assert await tx.inbound.remember_nonce("acme.example", "n1", expires_at=NOW)
        assert not await tx.inbound.remember_nonce("acme.example", "n1", expires_at=NOW)
        assert await tx.inbound.remember_nonce("globex.example", "n1", expires_at=NOW + 5)
        assert await tx.inbound.forget_nonces(now=NOW + 1) == 1
        assert await tx.inbound.transaction_response("acme.example", "t1") is None
        await tx.inbound.save_transaction_response("acme.example", "t1", b'{"ok":1}', now=NOW)
        assert await tx.inbound.transaction_response("acme.example", "t1") == b'{"ok":1}'


async def test_network_transaction_has_no_private_repositories(storage):
    async with storage.network_transaction() as tx:
        for private in ("principals", "tokens", "private_threads", "knowledge", "company"):
            assert not hasattr(tx, private)
        # The audit log is written from both sides, and read from the private side only.
        assert type(tx.audit) is AuditWriter
        assert not hasattr(tx.audit, "page") and not hasattr(tx.audit, "verify")
