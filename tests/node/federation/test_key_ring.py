"""Which key verifies what (`node.federation.key_ring`), against real storage: a key a host vouched for
counts for its company's events in that network and nowhere else; a key learned from the
company itself counts everywhere; retired keys only for what they signed in time."""

from __future__ import annotations

import pytest

from federation.errors import UnknownKey
from federation.event_content import MessagePosted
from federation.events import Event, sign_event
from federation.identifiers import ParticipantId
from federation.keys import SigningKey
from federation.sequencing import sequence_event
from node.federation.key_ring import RETIRE_GRACE_MS, KeyRing
from storage.storage import Storage

NOW = 1_700_000_000_000
HERE, HOST, X = "acme.example", "rogue.example", "umbrella.example"


@pytest.fixture
async def storage(tmp_path):
    store = await Storage.open(f"sqlite:///{tmp_path / 'node.db'}")
    yield store
    await store.close()


def post(network: str, origin: str, ts: int = NOW) -> Event:
    return Event(network, "t", ParticipantId("agent", "a", origin), origin, ts, MessagePosted(body="hi"))


async def lookups(storage: Storage, ring: KeyRing, network: str, event):
    async with storage.network_transaction() as tx:
        found = await tx.networks.get(network)
        return await ring.event_lookups(tx, found.id, event)


async def test_a_vouched_key_counts_only_for_its_company_s_events_in_its_network(storage):
    vouched, direct, host_key = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    ring = KeyRing(HERE, SigningKey.generate())
    async with storage.network_transaction() as tx:
        deal = await tx.networks.create(host=HOST, name="deal", title="D", history_visible=True, now=NOW)
        await tx.networks.create(host=HOST, name="other", title="O", history_visible=True, now=NOW)
        await tx.vouched_keys.pin(deal.id, X, key_id=vouched.key_id, public_key=vouched.verify_key.raw,
                                  status="unconfirmed", endpoint=None, now=NOW)
        await tx.peers.pin_key(HOST, key_id=host_key.key_id, public_key=host_key.verify_key.raw, valid_until=None,
                               now=NOW)

    origin, _ = await lookups(storage, ring, "deal", sign_event(post("deal", X), vouched))
    assert origin(X, vouched.key_id) == vouched.verify_key
    origin, _ = await lookups(storage, ring, "other", sign_event(post("other", X), vouched))
    with pytest.raises(UnknownKey):  # not in another network
        origin(X, vouched.key_id)
    async with storage.network_transaction() as tx:
        requests = await ring.direct_lookup(tx, [X], at_ms=NOW)
    with pytest.raises(UnknownKey):  # never for a request
        requests(X, vouched.key_id)
    # Nor for a host's signature: X "hosting" something is checked with X's own keys only.
    seqd = sequence_event(sign_event(post("deal", X), vouched), seq=2, prev_hash=bytes(32), host=X, host_ts=NOW,
                          host_key=vouched)
    _, host = await lookups(storage, ring, "deal", seqd)
    with pytest.raises(UnknownKey):
        host(X, vouched.key_id)
    # A key learned from the company itself counts everywhere.
    async with storage.network_transaction() as tx:
        await tx.peers.pin_key(X, key_id=direct.key_id, public_key=direct.verify_key.raw, valid_until=None, now=NOW)
    origin, _ = await lookups(storage, ring, "other", sign_event(post("other", X), direct))
    assert origin(X, direct.key_id) == direct.verify_key


@pytest.mark.parametrize("status, counts", [("confirmed", True), ("unconfirmed", True), ("disputed", False)])
async def test_a_disputed_vouched_key_verifies_nothing(storage, status: str, counts: bool):
    key, ring = SigningKey.generate(), KeyRing(HERE, SigningKey.generate())
    async with storage.network_transaction() as tx:
        deal = await tx.networks.create(host=HOST, name="deal", title="D", history_visible=True, now=NOW)
        await tx.vouched_keys.pin(deal.id, X, key_id=key.key_id, public_key=key.verify_key.raw, status=status,
                                  endpoint=None, now=NOW)
    origin, _ = await lookups(storage, ring, "deal", sign_event(post("deal", X), key))
    if counts:
        assert origin(X, key.key_id) == key.verify_key
    else:
        with pytest.raises(UnknownKey):
            origin(X, key.key_id)


async def test_a_retired_key_verifies_only_what_it_signed_before_it_retired(storage):
    old, ring = SigningKey.generate(), KeyRing(HERE, SigningKey.generate())
    rotated_at = NOW
    async with storage.network_transaction() as tx:
        await tx.networks.create(host=HOST, name="deal", title="D", history_visible=True, now=NOW)
        await tx.peers.pin_key(X, key_id=old.key_id, public_key=old.verify_key.raw, valid_until=rotated_at, now=NOW)
    last = rotated_at + RETIRE_GRACE_MS
    for ts, counts in ((rotated_at - 1, True), (last, True), (last + 1, False)):
        origin, _ = await lookups(storage, ring, "deal", sign_event(post("deal", X, ts), old))
        async with storage.network_transaction() as tx:
            requests = await ring.direct_lookup(tx, [X], at_ms=ts)
        for lookup in (origin, requests):
            if counts:
                assert lookup(X, old.key_id) == old.verify_key
            else:
                with pytest.raises(UnknownKey, match="retired"):
                    lookup(X, old.key_id)
    async with storage.network_transaction() as tx:
        await tx.peers.revoke_keys(X, [old.key_id], now=NOW)
    origin, _ = await lookups(storage, ring, "deal", sign_event(post("deal", X, rotated_at - 1), old))
    with pytest.raises(UnknownKey):  # revoked: nothing at all
        origin(X, old.key_id)
