"""Learning keys (`node.federation.key_refresh`) against real storage and scripted peers: what a document
from the company itself does, what one relayed by a host may do, and whom this node asks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from federation.key_documents import PastKey, build_key_document, make_revocation_notice, make_rotation_notice
from federation.keys import SigningKey
from node.basics.errors import PeerUnreachable
from node.federation.key_refresh import KeyRefresher
from node.federation.key_ring import KeyRing
from storage.network.tables import peer_keys
from storage.storage import Storage
from tests.node.conftest import FakeClock

HERE, HOST, X = "globex.example", "acme.example", "initech.example"
NOW = 1_700_000_000_000


class Documents:
    """A peer client that serves key documents by (endpoint, path) and records every call."""

    def __init__(self) -> None:
        self.served: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, str, str]] = []

    async def call(self, method, endpoint, destination, path, payload=None, **kw):
        self.calls.append((endpoint, destination, path))
        try:
            return self.served[(endpoint, path)]
        except KeyError:
            raise PeerUnreachable(f"{destination} is unreachable at {endpoint}") from None


@pytest.fixture
async def storage(tmp_path):
    store = await Storage.open(f"sqlite:///{tmp_path / 'node.db'}")
    async with store.network_transaction() as tx:
        await tx.networks.create(host=HOST, name="rollout", title="R", history_visible=True, now=NOW)
        await tx.peers.upsert(HOST, status="accepted", endpoint="https://host", now=NOW)
    yield store
    await store.close()


def refresher(storage: Storage, client: Documents) -> KeyRefresher:
    return KeyRefresher(storage, client, FakeClock(NOW), KeyRing(HERE, SigningKey.generate()))  # type: ignore[arg-type]


async def keys_of(storage: Storage, server: str) -> dict[str, bool]:
    async with storage.engine.connect() as conn:
        rows = await conn.execute(select(peer_keys.c.key_id, peer_keys.c.revoked_at).where(peer_keys.c.server == server))
        return {r.key_id: r.revoked_at is not None for r in rows}


async def vouched(storage: Storage, server: str) -> dict[str, tuple[str, bool]]:
    async with storage.network_transaction() as tx:
        return {k.key_id: (k.status, k.revoked_at is not None) for k in await tx.vouched_keys.of_server(server)}


async def test_revocations_in_a_company_s_own_document_are_applied_even_to_keys_it_no_longer_lists(storage):
    a, b, c = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    async with storage.network_transaction() as tx:
        for key in (a, b):
            await tx.peers.pin_key(X, key_id=key.key_id, public_key=key.verify_key.raw, valid_until=None, now=NOW)
        await tx.peers.upsert(X, status="accepted", endpoint="https://x", now=NOW)
    client = Documents()
    client.served[("https://x", "/keys")] = build_key_document(
        X, c, [PastKey(a.verify_key, NOW)], [make_rotation_notice(a, c.verify_key, server=X, now_ms=NOW)],
        [make_revocation_notice(c, b.key_id, server=X, now_ms=NOW)], now_ms=NOW + 1)
    assert await refresher(storage, client).refresh(X)
    assert await keys_of(storage, X) == {a.key_id: False, b.key_id: True, c.key_id: False}


async def test_vouched_keys_are_confirmed_or_disputed_by_the_company_s_own_document(storage):
    real, fake = SigningKey.generate(), SigningKey.generate()
    async with storage.network_transaction() as tx:
        network = await tx.networks.get("rollout")
        for key in (real, fake):
            await tx.vouched_keys.pin(network.id, X, key_id=key.key_id, public_key=key.verify_key.raw,
                                      status="unconfirmed", endpoint="https://x-as-the-host-says", now=NOW)
    client = Documents()
    client.served[("https://x-as-the-host-says", "/keys")] = build_key_document(X, real, [], [], [], now_ms=NOW)
    await refresher(storage, client).check_unconfirmed()
    assert await vouched(storage, X) == {real.key_id: ("confirmed", False), fake.key_id: ("disputed", False)}
    assert await keys_of(storage, X) == {real.key_id: False}  # first contact over TLS: learned from X itself
    async with storage.network_transaction() as tx:
        (alert,) = await tx.alerts.all()
    assert (alert.kind, alert.server, alert.network) == ("key_conflict", X, "rollout")
    assert fake.verify_key.fingerprint in alert.message and real.verify_key.fingerprint in alert.message


async def test_a_document_only_the_host_relays_counts_in_the_host_s_network_only(storage):
    vouched_key, rotated, other = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    async with storage.network_transaction() as tx:
        network = await tx.networks.get("rollout")
        await tx.vouched_keys.pin(network.id, X, key_id=vouched_key.key_id, public_key=vouched_key.verify_key.raw,
                                  status="unconfirmed", endpoint=None, now=NOW)
        await tx.vouched_keys.pin(network.id, X, key_id=other.key_id, public_key=other.verify_key.raw,
                                  status="unconfirmed", endpoint=None, now=NOW)
    client = Documents()  # X itself cannot be reached; the host relays a document
    client.served[("https://host", f"/servers/{X}/keys")] = build_key_document(
        X, rotated, [PastKey(vouched_key.verify_key, NOW)],
        [make_rotation_notice(vouched_key, rotated.verify_key, server=X, now_ms=NOW)],
        [make_revocation_notice(rotated, other.key_id, server=X, now_ms=NOW)], now_ms=NOW)
    assert await refresher(storage, client).refresh(X, network="rollout")
    assert await keys_of(storage, X) == {}  # nothing learned "from X itself"
    assert await vouched(storage, X) == {vouched_key.key_id: ("unconfirmed", False),
                                         rotated.key_id: ("unconfirmed", False),
                                         other.key_id: ("unconfirmed", True)}


async def test_a_relayed_document_for_a_company_known_directly_must_chain_from_its_own_keys(storage):
    real, forged = SigningKey.generate(), SigningKey.generate()
    async with storage.network_transaction() as tx:
        await tx.peers.pin_key(X, key_id=real.key_id, public_key=real.verify_key.raw, valid_until=None, now=NOW)
        await tx.peers.upsert(X, status="accepted", endpoint="https://x", now=NOW)
    client = Documents()  # X is down; the host relays a document signed by a key of its own
    client.served[("https://host", f"/servers/{X}/keys")] = build_key_document(
        X, forged, [], [], [make_revocation_notice(forged, real.key_id, server=X, now_ms=NOW)], now_ms=NOW)
    assert not await refresher(storage, client).refresh(X, network="rollout")
    assert await keys_of(storage, X) == {real.key_id: False}  # not pinned, and the real key not revoked
    assert await vouched(storage, X) == {}


async def test_a_stranger_s_name_never_makes_this_node_call_out(storage):
    client = Documents()
    assert not await refresher(storage, client).refresh("stranger.example", network="rollout")
    assert client.calls == []
