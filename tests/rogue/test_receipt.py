"""What a node does with what other nodes send it: a rogue or confused peer against a real node
over real TLS.

Two real nodes (Acme hosts `acme-rollout`, Globex is a member, four participants attached,
thread `rollout-status` open) are set up as in the seed scenario. The tests then talk to Acme's
(or Globex's) federation listener by hand: requests are signed here with `sign_request`, with
a node's real key or a stranger's, and sent with aiohttp using the test CA and the receiver's
server name for TLS.

Request level: a defective request (signature, key, peering, blocking, destination, clock,
replay, body, path, header) is refused as a whole with a clear 4xx and the JSON error code.
Event level: inside an accepted transaction (HTTP 200) each event gets its own result; a bad
event (signature, membership, home node, attachment, closed thread or network, unknown
network, forged sequencing, size) is refused with its status and code, and never blocks the
good events next to it. Retransmissions are answered from memory, byte for byte. Last, what
a member reads back from its host: only members may, and a large page must arrive whole.

Every refusal is checked to leave nothing behind: the refused event id is not stored, the
network's head is unchanged and no outbox rows were added. A request refused as a whole keeps
no transaction answer, and one refused before authentication does not even leave its nonce;
a transaction accepted with refused events keeps only its answer, for retransmissions.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from yarl import URL

from federation.canonical_json import encode_canonical
from federation.event_content import MessagePosted
from federation.events import Event, sign_event
from federation.identifiers import ParticipantId
from federation.keys import SigningKey, b64encode
from federation.request_signing import MAX_SKEW_MS, sign_request
from federation.sequencing import sequence_event
from node.basics.clock import SystemClock
from node.basics.errors import PeerRefused
from node.federation.api import MAX_FEDERATION_BODY_BYTES
from node.federation.peer_client import FEDERATION_PREFIX, PeerClient
from node.federation.tls import PeerTrust, host_of
from storage.network.tables import inbound_transactions, network_events, outbox, request_nonces
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout
from tests.tls_fixtures import TestCertificateAuthority

INITECH = "initech.example"
DELIVERY, OPS = f"agent:delivery@{GLOBEX}", f"agent:ops@{ACME}"

# --- events built by hand ------------------------------------------------------------------

_timestamps = itertools.count(int(time.time() * 1000))


def message(sender: str, body: str = "status update", *, network: str = NETWORK, thread: str = THREAD,
            origin: str | None = None) -> Event:
    """An unsigned `message.posted`; origin defaults to the sender's home node."""
    who = ParticipantId.parse(sender)
    return Event(network, thread, who, origin or who.server, next(_timestamps), MessagePosted(body=body))


def signed(event: Event, key: SigningKey) -> tuple[dict, str]:
    """The wire form of `event` signed with `key`, and its event id."""
    s = sign_event(event, key)
    return s.to_wire(), s.event_id


def hand_signed(event: dict, key: SigningKey) -> tuple[dict, str]:
    """Sign an event dict the models would refuse to build (too big...), as a rogue would."""
    data = encode_canonical(event)
    digest = hashlib.sha256(data).digest()
    wire = {"event": event, "hash": b64encode(digest), "signature": {"key_id": key.key_id,
                                                                     "sig": b64encode(key.sign(data))}}
    return wire, "$" + b64encode(digest)


def raw_message(sender: str, body: str) -> dict:
    who = ParticipantId.parse(sender)
    return {"type": "message.posted", "network": NETWORK, "thread": THREAD, "sender": sender,
            "origin": who.server, "origin_ts": next(_timestamps), "content": {"body": body}}


def transaction(*wires: dict) -> bytes:
    return encode_canonical({"events": list(wires)})


def new_txn_id() -> str:
    return "rogue-" + secrets.token_hex(8)


# --- sending by hand -----------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def code(self) -> str:
        return self.json["error"]["code"]

    def results(self) -> list[dict]:
        assert self.status == 200, (self.status, self.raw[:500])
        return self.json["results"]


@dataclass
class Peer:
    """Someone who speaks the federation protocol as `server`, with `key` (which may or may
    not be the key the receiver pinned for that name)."""

    server: str
    key: SigningKey
    http: aiohttp.ClientSession
    trust: PeerTrust
    sent_nonces: list[str] = field(default_factory=list)

    def authorization(self, method: str, path: str, body: bytes, *, destination: str,
                      now_ms: int | None = None) -> str:
        nonce = b64encode(secrets.token_bytes(16))
        self.sent_nonces.append(nonce)
        return sign_request(self.key, method=method, path=path, origin=self.server, destination=destination,
                            body=body, now_ms=int(time.time() * 1000) if now_ms is None else now_ms, nonce=nonce)

    async def send(self, node: ClusterNode, method: str, path: str, body: bytes = b"", *,
                   sign_body: bytes | None = None, destination: str | None = None, now_ms: int | None = None,
                   authorization: str | None = None, unsigned: bool = False) -> Answer:
        """Sign (unless `authorization` or `unsigned`) and send. `sign_body` signs other bytes
        than the ones sent; `destination` addresses the signature to another server."""
        full = FEDERATION_PREFIX + path
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif not unsigned:
            headers["Authorization"] = self.authorization(
                method, full, body if sign_body is None else sign_body,
                destination=destination or node.server, now_ms=now_ms)
        return await raw_request(self.http, self.trust.context(), node, method, full, body, headers)

    async def put_transaction(self, node: ClusterNode, body: bytes, txn_id: str | None = None, **kw) -> Answer:
        return await self.send(node, "PUT", f"/transactions/{txn_id or new_txn_id()}", body, **kw)

    def peer_client(self) -> PeerClient:
        """The product's own client, for this identity."""
        return PeerClient(self.http, self.trust, server_name=self.server, signing_key=self.key, clock=SystemClock())


async def raw_request(http: aiohttp.ClientSession, ssl_context: Any, node: ClusterNode, method: str, path: str,
                      body: bytes, headers: dict[str, str]) -> Answer:
    url = URL(node.endpoint + path, encoded=True)
    data = io.BytesIO(body) if len(body) > 1024 * 1024 else body  # aiohttp warns on large raw bytes
    async with http.request(method, url, data=data, headers=headers, ssl=ssl_context,
                            server_hostname=host_of(node.server), allow_redirects=False) as resp:
        return Answer(resp.status, await resp.read())


# --- what a node holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Holdings:
    head_seq: int
    events: int
    outbox_rows: int
    depth: dict[str, int]
    transactions: int


async def holdings(node: ClusterNode, network: str = NETWORK) -> Holdings:
    async with node.storage.network_transaction() as tx:
        record = await tx.networks.get(network)
        depth = await tx.outbox.depth()
    async with node.storage.engine.connect() as conn:
        count = lambda table, *where: conn.scalar(select(func.count()).select_from(table).where(*where))  # noqa: E731
        events = await count(network_events, network_events.c.network_id == record.id)
        rows = await count(outbox)
        txns = await count(inbound_transactions)
    return Holdings(record.head_seq, events, rows, depth, txns)


async def nonce_remembered(node: ClusterNode, origin: str, nonce: str) -> bool:
    async with node.storage.engine.connect() as conn:
        found = await conn.scalar(select(func.count()).select_from(request_nonces)
                                  .where(request_nonces.c.origin == origin, request_nonces.c.nonce == nonce))
    return bool(found)


async def assert_absent(node: ClusterNode, *event_ids: str) -> None:
    async with node.storage.network_transaction() as tx:
        for event_id in event_ids:
            assert await tx.events.find(event_id) is None, f"{event_id} was stored at {node.server}"


async def assert_untouched(node: ClusterNode, before: Holdings, *refused_ids: str, answers_kept: int = 0) -> None:
    """Nothing was stored: no event, no head move, no outbox row. A transaction refused as a
    whole keeps no answer; one accepted with refused events keeps its answer (`answers_kept`),
    so a retransmission gets the same one."""
    await assert_absent(node, *refused_ids)
    after = await holdings(node)
    assert after == replace(before, transactions=before.transactions + answers_kept), (before, after)
    assert after.depth == before.depth


async def assert_event_refused(node: ClusterNode, before: Holdings, *refused_ids: str) -> None:
    await assert_untouched(node, before, *refused_ids, answers_kept=1)


async def assert_request_refused(node: ClusterNode, peer: Peer, answer: Answer, status: int, code: str,
                                 before: Holdings, *refused_ids: str, authenticated: bool = False) -> None:
    assert (answer.status, answer.code) == (status, code), (answer.status, answer.raw[:500])
    assert answer.json["error"]["message"]
    await assert_untouched(node, before, *refused_ids)
    if not authenticated:  # nothing is written before authentication passes, not even the nonce
        for nonce in peer.sent_nonces:
            assert not await nonce_remembered(node, peer.server, nonce)


def assert_refused_result(result: dict, status: int, code: str, event_id: str | None = None,
                          says: str | None = None) -> None:
    assert (result["status"], result["code"]) == (status, code), result
    assert "seq" not in result
    if event_id is not None and "event_id" in result:
        assert result["event_id"] == event_id
    if says is not None:
        assert says in result["message"], result


# --- fixtures ------------------------------------------------------------------------------


@dataclass
class Rollout:
    acme: ClusterNode
    globex: ClusterNode
    tokens: dict[str, str]
    ca: TestCertificateAuthority
    tmp_path: Any
    http: aiohttp.ClientSession
    trust: PeerTrust

    def peer(self, server: str, key: SigningKey) -> Peer:
        return Peer(server, key, self.http, self.trust)

    @property
    def as_globex(self) -> Peer:
        """Globex's real identity: its server name and the key Acme pinned."""
        return self.peer(GLOBEX, self.globex.key)

    @property
    def as_acme(self) -> Peer:
        return self.peer(ACME, self.acme.key)


async def quiet(*nodes: ClusterNode) -> None:
    """Wait until nothing is queued anywhere and every node has the same head."""
    async def settled():
        heads = set()
        for node in nodes:
            async with node.storage.network_transaction() as tx:
                if await tx.outbox.depth():
                    return False
                heads.add((await tx.networks.get(NETWORK)).head_seq)
        return len(heads) == 1

    await eventually(settled)


@pytest.fixture
async def rollout(tmp_path):
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme")
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex")
    try:
        tokens = await open_rollout(acme, globex)
        await quiet(acme, globex)
        bundle = ca.write_ca_bundle(tmp_path / "rogue-ca.pem")
        async with aiohttp.ClientSession() as http:
            yield Rollout(acme, globex, tokens, ca, tmp_path, http, PeerTrust(bundle))
    finally:
        await globex.stop()
        await acme.stop()


async def peer_via_side_network(host: ClusterNode, other: ClusterNode, network: str) -> None:
    """Make `other` a peer of `host` (keys pinned both ways) through a network that has
    nothing to do with `acme-rollout`."""
    await host.admin("POST", "/v1/networks", {"name": network, "title": "Side deal"}, expect=201)
    invite = await host.admin("POST", f"/v1/networks/{network}/invites",
                              {"server": other.server, "endpoint": other.endpoint}, expect=201)
    await other.admin("POST", f"/v1/invites/{invite['id']}/accept")

    async def joined():
        return (await host.admin("GET", f"/v1/networks/{network}"))["members"].get(other.server) == "member"

    await eventually(joined)


@pytest.fixture
async def with_initech(rollout):
    """Initech: a real third node, a peer of both Acme and Globex, a member of neither's
    `acme-rollout`."""
    initech = await start_node(rollout.tmp_path, INITECH, rollout.ca, display_name="Initech")
    try:
        await peer_via_side_network(rollout.acme, initech, "acme-side")
        await peer_via_side_network(rollout.globex, initech, "globex-side")
        await quiet(rollout.acme, rollout.globex)
        yield initech
    finally:
        await initech.stop()


def good_post(rollout: Rollout, body: str = "a legitimate update") -> tuple[dict, str]:
    """A message Acme would accept from Globex: an attached participant, in the open thread."""
    return signed(message(DELIVERY, body), rollout.globex.key)


# === Request level: the whole request is refused ==========================================


async def test_a_body_tampered_after_signing_is_refused(rollout):
    wire, event_id = good_post(rollout)
    body = transaction(wire)
    tampered = body.replace(b"legitimate", b"legitimatE")
    assert len(tampered) == len(body) and tampered != body
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, tampered, sign_body=body)
    await assert_request_refused(rollout.acme, peer, answer, 401, "invalid_signature", before, event_id)
    assert answer.json["error"]["message"] == "invalid signature"  # the cause is not revealed


async def test_a_stranger_key_claiming_to_be_globex_is_unknown(rollout):
    stranger = SigningKey.generate()
    wire, event_id = signed(message(DELIVERY), stranger)
    before = await holdings(rollout.acme)
    peer = rollout.peer(GLOBEX, stranger)
    answer = await peer.put_transaction(rollout.acme, transaction(wire))
    await assert_request_refused(rollout.acme, peer, answer, 401, "unknown_key", before, event_id)


async def test_a_node_that_is_not_a_peer_is_refused(rollout):
    initech = await start_node(rollout.tmp_path, INITECH, rollout.ca, display_name="Initech")
    try:
        wire, event_id = signed(message(f"agent:bob@{INITECH}"), initech.key)
        before = await holdings(rollout.acme)
        peer = rollout.peer(INITECH, initech.key)
        with pytest.raises(PeerRefused) as refused:  # the product's own client, as initech
            await peer.peer_client().call("PUT", rollout.acme.endpoint, ACME, f"/transactions/{new_txn_id()}",
                                          {"events": [wire]})
        assert (refused.value.peer_status, refused.value.peer_code) == (403, "not_a_peer")
        answer = await peer.put_transaction(rollout.acme, transaction(wire))
        await assert_request_refused(rollout.acme, peer, answer, 403, "not_a_peer", before, event_id)
    finally:
        await initech.stop()


async def test_a_blocked_server_is_refused_even_with_its_pinned_key(rollout):
    await rollout.acme.admin("POST", f"/v1/peers/{GLOBEX}/block")
    wire, event_id = good_post(rollout)
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, transaction(wire))
    await assert_request_refused(rollout.acme, peer, answer, 403, "blocked", before, event_id)


async def test_a_request_signed_for_another_server_is_refused(rollout):
    wire, event_id = good_post(rollout)
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, transaction(wire), destination=INITECH)
    await assert_request_refused(rollout.acme, peer, answer, 403, "wrong_destination", before, event_id)


@pytest.mark.parametrize("offset_ms", [-(MAX_SKEW_MS + 60_000), MAX_SKEW_MS + 60_000, -3_600_000])
async def test_a_request_outside_the_clock_window_is_refused(rollout, offset_ms):
    wire, event_id = good_post(rollout)
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, transaction(wire), now_ms=int(time.time() * 1000) + offset_ms)
    await assert_request_refused(rollout.acme, peer, answer, 401, "clock_skew", before, event_id)


async def test_a_replayed_request_is_refused_and_stores_nothing_twice(rollout):
    wire, event_id = good_post(rollout)
    body = transaction(wire)
    path = f"{FEDERATION_PREFIX}/transactions/{new_txn_id()}"
    peer = rollout.as_globex
    headers = {"Content-Type": "application/json",
               "Authorization": peer.authorization("PUT", path, body, destination=ACME)}
    before = await holdings(rollout.acme)
    first = await raw_request(rollout.http, rollout.trust.context(), rollout.acme, "PUT", path, body, headers)
    (result,) = first.results()
    assert (result["status"], result["event_id"], result["seq"]) == (200, event_id, before.head_seq + 1)
    after_first = await holdings(rollout.acme)
    assert (after_first.head_seq, after_first.events) == (before.head_seq + 1, before.events + 1)

    second = await raw_request(rollout.http, rollout.trust.context(), rollout.acme, "PUT", path, body, headers)
    assert (second.status, second.code) == (401, "replayed")
    after_second = await holdings(rollout.acme)
    # The delivery of the first to Globex may have finished meanwhile: compare what is stored.
    assert (after_second.head_seq, after_second.events, after_second.outbox_rows, after_second.transactions) == (
        after_first.head_seq, after_first.events, after_first.outbox_rows, after_first.transactions)


@pytest.mark.parametrize("body", [
    b'{"events": [',
    b"\xff\xfe not utf-8",
    b'{"events": [], "events": []}',
    b'{"events": [1.5]}',
    b"",
], ids=["truncated", "not-utf8", "duplicate-key", "float", "empty"])
async def test_a_body_that_is_not_json_is_refused(rollout, body):
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, body)
    await assert_request_refused(rollout.acme, peer, answer, 400, "malformed_json", before, authenticated=True)


async def test_deeply_nested_json_is_refused_without_harm(rollout):
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    for body in (b"[" * 10_000 + b"]" * 10_000, b'{"events":' + b"[" * 10_000, b'{"a":' * 10_000):
        answer = await peer.put_transaction(rollout.acme, body)
        await assert_request_refused(rollout.acme, peer, answer, 400, "malformed_json", before, authenticated=True)
    # And the node still serves the next honest request.
    wire, event_id = good_post(rollout)
    (result,) = (await peer.put_transaction(rollout.acme, transaction(wire))).results()
    assert (result["status"], result["event_id"]) == (200, event_id)


async def test_a_body_over_the_federation_limit_is_refused(rollout):
    wire, event_id = good_post(rollout)
    body = transaction(wire)
    body = body + b" " * (MAX_FEDERATION_BODY_BYTES + 1 - len(body))
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, body)
    await assert_request_refused(rollout.acme, peer, answer, 413, "payload_too_large", before, event_id)


async def test_a_valid_transaction_between_1_and_8_mib_is_accepted(rollout):
    """The body limit is MAX_FEDERATION_BODY_BYTES, not the JSON parser's 1 MiB default (a
    transaction of 100 events of up to 64 KiB must fit)."""
    wires, ids = [], []
    for i in range(22):  # 22 legitimate posts of 16384 three-byte characters: about 1.1 MB
        wire, event_id = signed(message(DELIVERY, f"{i:02d}" + "\u20ac" * 16382), rollout.globex.key)
        wires.append(wire)
        ids.append(event_id)
    body = transaction(*wires)
    assert 1024 * 1024 < len(body) < MAX_FEDERATION_BODY_BYTES
    before = await holdings(rollout.acme)
    answer = await rollout.as_globex.put_transaction(rollout.acme, body)
    assert answer.status == 200, (answer.status, answer.raw[:300])
    assert [r["status"] for r in answer.results()] == [200] * len(ids)
    assert (await holdings(rollout.acme)).head_seq == before.head_seq + len(ids)


async def test_a_batch_built_by_the_delivery_worker_is_accepted_by_its_peer(rollout):
    """The worker bounds a batch by 1 MiB of event wires; with the envelope and commas the body
    is a little over 1 MiB, and the receiver must still take it (else the same rows are
    claimed and refused forever). The client streams such a body, so aiohttp does not warn."""
    acme, globex, ops = rollout.acme, rollout.globex, rollout.tokens["ops"]
    await globex.stop()  # what Acme sequences now waits in its outbox for one batch
    for i in range(21):
        await acme.client(ops, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                          {"body": f"{i:02d}" + "\u20ac" * 16_000}, expect=201)

    async def queued() -> list[bytes]:
        async with acme.storage.engine.connect() as conn:
            rows = await conn.execute(select(network_events.c.wire).join(outbox, outbox.c.event_row_id
                                                                         == network_events.c.id)
                                      .where(outbox.c.destination == GLOBEX,
                                             outbox.c.state.in_(["pending", "in_flight"]))
                                      .order_by(outbox.c.id))
            return [r.wire for r in rows]

    wires = await queued()
    overhead = len(wires[-1]) - len(("20" + "\u20ac" * 16_000).encode())
    needed = 1024 * 1024 - 5 - sum(len(w) for w in wires) - overhead  # body bytes of a last, fitting post
    euros, ascii_ = divmod(needed, 3)
    await acme.client(ops, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                      {"body": "\u20ac" * euros + "a" * ascii_}, expect=201)
    wires = await queued()
    assert (len(wires), sum(len(w) for w in wires)) == (22, 1024 * 1024 - 5)  # within the worker's bound
    await globex.start()

    async def delivered():
        async with acme.storage.network_transaction() as tx:
            depth, status = await tx.outbox.depth(), await tx.peers.delivery(GLOBEX)
        assert depth == {}, f"still queued {depth}, last error: {status.last_error}"
        return True

    await eventually(delivered, timeout=10)



async def test_a_transaction_of_more_than_100_events_is_refused(rollout):
    wires = [good_post(rollout, f"post {i}") for i in range(101)]
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, transaction(*[w for w, _ in wires]))
    await assert_request_refused(rollout.acme, peer, answer, 422, "invalid_request", before,
                                 *[i for _, i in wires], authenticated=True)


@pytest.mark.parametrize("txn_id", ["x" * 65, "semi;colon", "dollar$sign", "tilde~ok?no=1"])
async def test_an_invalid_transaction_id_is_refused(rollout, txn_id):
    wire, event_id = good_post(rollout)
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.send(rollout.acme, "PUT", f"/transactions/{txn_id}", transaction(wire))
    await assert_request_refused(rollout.acme, peer, answer, 422, "invalid_request", before, event_id,
                                 authenticated=True)
    assert answer.json["error"]["fields"][0]["field"] == "txn_id"


@pytest.mark.parametrize("authorization", [None, "", "Bearer abc", 'AgentNet origin="globex.example"'],
                         ids=["missing", "empty", "other-scheme", "truncated"])
async def test_a_request_without_a_valid_authorization_header_is_refused(rollout, authorization):
    wire, event_id = good_post(rollout)
    before = await holdings(rollout.acme)
    peer = rollout.as_globex
    answer = await peer.put_transaction(rollout.acme, transaction(wire), authorization=authorization,
                                        unsigned=authorization is None)
    await assert_request_refused(rollout.acme, peer, answer, 401, "invalid_signature", before, event_id)


# === Event level: the transaction is accepted, each event judged on its own ===============


async def test_an_event_whose_signature_covers_other_bytes_is_refused(rollout):
    event = message(DELIVERY, "what globex said")
    wire, event_id = signed(event, rollout.globex.key)
    other, _ = signed(message(DELIVERY, "something else"), rollout.globex.key)
    wire["signature"] = other["signature"]  # a real globex signature, over different bytes
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 401, "invalid_signature", event_id)
    await assert_event_refused(rollout.acme, before, event_id)


async def test_an_event_whose_hash_does_not_match_is_refused(rollout):
    wire, event_id = signed(message(DELIVERY, "hash check"), rollout.globex.key)
    forged_hash = b64encode(hashlib.sha256(b"another event").digest())
    wire["hash"] = forged_hash
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 401, "invalid_signature", "$" + forged_hash)
    await assert_event_refused(rollout.acme, before, event_id, "$" + forged_hash)


async def test_an_event_from_a_peer_that_is_not_a_member_is_refused(rollout, with_initech):
    initech = with_initech
    wire, event_id = signed(message(f"agent:bob@{INITECH}", "let me in"), initech.key)
    before = await holdings(rollout.acme)
    answer = await rollout.peer(INITECH, initech.key).put_transaction(rollout.acme, transaction(wire))
    (result,) = answer.results()  # initech is a peer: the request passes, the event does not
    assert_refused_result(result, 403, "forbidden", event_id, says="not a member")
    await assert_event_refused(rollout.acme, before, event_id)


async def test_globex_cannot_speak_for_an_acme_participant(rollout):
    """Origin globex, sender agent:ops@acme.example, signed by globex: the home node is wrong."""
    wire, event_id = signed(message(OPS, "acme approves", origin=GLOBEX), rollout.globex.key)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 400, "invalid_event", event_id, says="home node")
    await assert_event_refused(rollout.acme, before, event_id)


@pytest.mark.parametrize("key_id_claimed", ["globex", "acme"])
async def test_globex_cannot_sign_as_acme(rollout, key_id_claimed):
    """Origin acme.example, sender agent:ops@acme.example, but signed with globex's key: under
    globex's key id it is an unknown key for acme, under acme's key id a bad signature."""
    wire, event_id = signed(message(OPS, "acme approves"), rollout.globex.key)
    expected = (401, "unknown_key")
    if key_id_claimed == "acme":
        wire["signature"]["key_id"] = rollout.acme.key.key_id
        expected = (401, "invalid_signature")
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, *expected, event_id)
    await assert_event_refused(rollout.acme, before, event_id)


async def test_a_sender_that_is_not_attached_is_refused(rollout):
    await rollout.globex.create("agent", "intern", "Intern")  # exists at globex, never attached
    wire, event_id = signed(message(f"agent:intern@{GLOBEX}", "hello"), rollout.globex.key)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 403, "forbidden", event_id, says="not attached")
    await assert_event_refused(rollout.acme, before, event_id)


async def test_a_post_into_a_closed_thread_is_refused(rollout):
    await rollout.acme.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/close")
    await quiet(rollout.acme, rollout.globex)
    wire, event_id = good_post(rollout)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 403, "forbidden", event_id, says="closed")
    await assert_event_refused(rollout.acme, before, event_id)


async def test_a_post_into_a_closed_network_is_refused(rollout):
    await rollout.acme.admin("POST", f"/v1/networks/{NETWORK}/close")
    await quiet(rollout.acme, rollout.globex)
    wire, event_id = good_post(rollout)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 403, "forbidden", event_id, says="network closed")
    await assert_event_refused(rollout.acme, before, event_id)


async def test_an_event_for_a_network_the_receiver_never_joined_is_unknown(rollout):
    wire, event_id = signed(message(DELIVERY, "hello", network="globex-internal"), rollout.globex.key)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 404, "unknown_network", event_id)
    await assert_event_refused(rollout.acme, before, event_id)


async def test_a_sequenced_event_from_a_peer_that_is_not_the_host_is_refused(rollout, with_initech):
    """Initech, a peer of Globex but not the host of acme-rollout, sends Globex the next event
    of acme-rollout, placed and signed by itself while naming acme.example as the host."""
    initech = with_initech
    async with rollout.globex.storage.network_transaction() as tx:
        head = await tx.networks.get(NETWORK)
    signed_event = sign_event(message(f"agent:bob@{INITECH}", "the host says so"), initech.key)
    forged = sequence_event(signed_event, seq=head.head_seq + 1, prev_hash=head.head_hash, host=ACME,
                            host_ts=int(time.time() * 1000), host_key=initech.key)
    before = await holdings(rollout.globex)
    answer = await rollout.peer(INITECH, initech.key).put_transaction(rollout.globex,
                                                                    transaction(forged.to_wire()))
    (result,) = answer.results()
    assert_refused_result(result, 403, "forbidden", forged.event_id, says="only the network's host")
    await assert_event_refused(rollout.globex, before, forged.event_id)


async def test_a_genuine_host_event_relayed_by_another_peer_is_refused(rollout, with_initech):
    """Even Acme's real signatures do not make Initech a relay: Globex's copy does not move."""
    initech = with_initech
    async with rollout.acme.storage.network_transaction() as tx:
        network = await tx.networks.get(NETWORK)
    posted = await rollout.acme.client(rollout.tokens["ops"], "POST",
                                       f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                                       {"body": "relay me"}, expect=201)
    await quiet(rollout.acme, rollout.globex)
    async with rollout.acme.storage.network_transaction() as tx:
        genuine = await tx.events.find(posted["id"])
    assert genuine.seq == network.head_seq + 1
    before = await holdings(rollout.globex)
    answer = await rollout.peer(INITECH, initech.key).put_transaction(
        rollout.globex, b'{"events":[' + genuine.wire + b"]}")
    (result,) = answer.results()
    assert_refused_result(result, 403, "forbidden", posted["id"], says="only the network's host")
    await assert_event_refused(rollout.globex, before)


async def test_a_member_cannot_send_the_host_a_sequenced_event(rollout):
    """Globex places its own event at the next seq of acme-rollout and sends it to the host."""
    async with rollout.acme.storage.network_transaction() as tx:
        head = await tx.networks.get(NETWORK)
    forged = sequence_event(sign_event(message(DELIVERY, "self-placed"), rollout.globex.key),
                            seq=head.head_seq + 1, prev_hash=head.head_hash, host=ACME,
                            host_ts=int(time.time() * 1000), host_key=rollout.globex.key)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(forged.to_wire()))).results()
    assert_refused_result(result, 403, "forbidden", forged.event_id)
    await assert_event_refused(rollout.acme, before, forged.event_id)


async def test_a_body_over_16k_characters_is_refused(rollout):
    wire, event_id = hand_signed(raw_message(DELIVERY, "x" * 16_385), rollout.globex.key)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 400, "invalid_event")
    await assert_event_refused(rollout.acme, before, event_id)


async def test_an_event_over_64_kib_is_refused(rollout):
    """16384 characters is a legal body, but 16384 four-byte characters make an event over
    65536 canonical bytes."""
    event = raw_message(DELIVERY, "\U0001F600" * 16_384)
    assert len(encode_canonical(event)) > 64 * 1024
    wire, event_id = hand_signed(event, rollout.globex.key)
    before = await holdings(rollout.acme)
    (result,) = (await rollout.as_globex.put_transaction(rollout.acme, transaction(wire))).results()
    assert_refused_result(result, 400, "invalid_event", says="65536 bytes")
    await assert_event_refused(rollout.acme, before, event_id)


async def test_things_that_are_not_events_are_refused_one_by_one(rollout):
    good, good_id = good_post(rollout)
    junk = ["text", 7, None, [], {}, {"event": {}, "hash": "x", "signature": {}}, {"seq": "one"}]
    before = await holdings(rollout.acme)
    results = (await rollout.as_globex.put_transaction(rollout.acme, transaction(*junk, good))).results()
    assert len(results) == len(junk) + 1
    for result in results[:-1]:
        assert_refused_result(result, 400, "invalid_event")
    assert (results[-1]["status"], results[-1]["event_id"], results[-1]["seq"]) == (200, good_id, before.head_seq + 1)


async def test_one_bad_event_never_blocks_the_rest(rollout):
    first, first_id = good_post(rollout, "first good")
    bad, bad_id = signed(message(DELIVERY, "tampered"), rollout.globex.key)
    bad["signature"] = signed(message(DELIVERY, "other"), rollout.globex.key)[0]["signature"]
    unattached, unattached_id = signed(message(f"agent:intern@{GLOBEX}", "hi"), rollout.globex.key)
    last, last_id = good_post(rollout, "second good")
    before = await holdings(rollout.acme)
    results = (await rollout.as_globex.put_transaction(rollout.acme,
                                                        transaction(first, bad, unattached, last))).results()
    assert (results[0]["status"], results[0]["event_id"], results[0]["seq"]) == (200, first_id, before.head_seq + 1)
    assert_refused_result(results[1], 401, "invalid_signature", bad_id)
    assert_refused_result(results[2], 403, "forbidden", unattached_id)
    assert (results[3]["status"], results[3]["event_id"], results[3]["seq"]) == (200, last_id, before.head_seq + 2)
    await assert_absent(rollout.acme, bad_id, unattached_id)
    after = await holdings(rollout.acme)
    assert (after.head_seq, after.events) == (before.head_seq + 2, before.events + 2)
    assert after.outbox_rows == before.outbox_rows + 2  # the two good ones, fanned out to globex
    async with rollout.acme.storage.network_transaction() as tx:
        assert [(await tx.events.find(i)).seq for i in (first_id, last_id)] == [before.head_seq + 1,
                                                                               before.head_seq + 2]

    async def globex_has_both():
        async with rollout.globex.storage.network_transaction() as tx:
            return all([await tx.events.find(i) for i in (first_id, last_id)])

    await eventually(globex_has_both)
    await assert_absent(rollout.globex, bad_id, unattached_id)


async def test_a_retransmitted_transaction_gets_the_same_answer_and_stores_nothing_twice(rollout):
    wire, _event_id = good_post(rollout)
    bad, bad_id = signed(message(f"agent:intern@{GLOBEX}", "hi"), rollout.globex.key)
    body, txn_id = transaction(wire, bad), new_txn_id()
    before = await holdings(rollout.acme)
    first = await rollout.as_globex.put_transaction(rollout.acme, body, txn_id)  # a fresh nonce each time
    assert [r["status"] for r in first.results()] == [200, 403]
    after_first = await holdings(rollout.acme)
    assert (after_first.head_seq, after_first.events, after_first.transactions) == (
        before.head_seq + 1, before.events + 1, before.transactions + 1)
    for _ in range(2):
        again = await rollout.as_globex.put_transaction(rollout.acme, body, txn_id)
        assert again.status == 200
        assert again.raw == first.raw  # byte-identical
        now = await holdings(rollout.acme)
        assert (now.head_seq, now.events, now.outbox_rows, now.transactions) == (
            after_first.head_seq, after_first.events, after_first.outbox_rows, after_first.transactions)
    await assert_absent(rollout.acme, bad_id)


async def test_a_reused_transaction_id_with_other_events_stores_nothing_new(rollout):
    wire, _ = good_post(rollout, "first batch")
    txn_id = new_txn_id()
    first = await rollout.as_globex.put_transaction(rollout.acme, transaction(wire), txn_id)
    assert first.results()[0]["status"] == 200
    await quiet(rollout.acme, rollout.globex)  # the first post's fan-out is done: the outbox holds still
    before = await holdings(rollout.acme)
    other, other_id = good_post(rollout, "smuggled under an old id")
    again = await rollout.as_globex.put_transaction(rollout.acme, transaction(other), txn_id)
    assert again.raw == first.raw
    await assert_untouched(rollout.acme, before, other_id)


async def test_the_same_transaction_id_from_another_origin_is_its_own_transaction(rollout, with_initech):
    """Transaction ids are per origin: initech reusing globex's id does not get globex's answer."""
    initech = with_initech
    wire, _ = good_post(rollout)
    txn_id = new_txn_id()
    first = await rollout.as_globex.put_transaction(rollout.acme, transaction(wire), txn_id)
    assert first.results()[0]["status"] == 200
    intruder, intruder_id = signed(message(f"agent:bob@{INITECH}", "mine"), initech.key)
    before = await holdings(rollout.acme)
    answer = await rollout.peer(INITECH, initech.key).put_transaction(rollout.acme, transaction(intruder), txn_id)
    assert answer.raw != first.raw
    (result,) = answer.results()
    assert_refused_result(result, 403, "forbidden", intruder_id, says="not a member")
    await assert_absent(rollout.acme, intruder_id)
    after = await holdings(rollout.acme)
    assert (after.head_seq, after.events, after.outbox_rows) == (before.head_seq, before.events, before.outbox_rows)
    assert after.transactions == before.transactions + 1  # initech's own answer, kept for its retries



# === What a member reads back from its host ===============================================


async def test_a_peer_that_is_not_a_member_cannot_read_the_network(rollout, with_initech):
    initech = with_initech
    peer = rollout.peer(INITECH, initech.key)
    answer = await peer.send(rollout.acme, "GET", f"/networks/{NETWORK}/events?after=0")
    assert (answer.status, answer.code) == (403, "not_a_peer")
    assert b"rollout-status" not in answer.raw


async def test_a_large_catch_up_page_reaches_the_member(rollout):
    """Globex asks Acme for the history with the product's own client, as its catch-up does."""
    for i in range(10):  # about 500 KB of events
        await rollout.acme.client(rollout.tokens["ops"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                                  {"body": f"{i:02d}" + "\u20ac" * 16_000}, expect=201)
    head = (await holdings(rollout.acme)).head_seq
    page = await rollout.as_globex.peer_client().call("GET", rollout.acme.endpoint, ACME,
                                                      f"/networks/{NETWORK}/events?after=0")
    assert (page["head"], len(page["events"])) == (head, head)
