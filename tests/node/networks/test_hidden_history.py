"""A network that hides earlier history from later members, on two real nodes over TLS: the
company admitted later receives the messages before its admission as stubs (id, place, the
host's signature), so its copy links and verifies end to end without a word of them, sees
everything after, and its export verifies offline. A host that sends a stub where history is
visible is refused."""

from __future__ import annotations

import json

from sqlalchemy import select

from federation.canonical_json import encode_canonical
from federation.sequencing import SequencedEvent, StubEvent
from storage.network.tables import network_events, networks
from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD
from tests.node.ops.test_export import _cli, _verify_elsewhere

BEFORE = ["SECRET-BEFORE-1 pricing floor is 41", "SECRET-BEFORE-2 the other bidder is Initech"]


async def _chain(node: ClusterNode) -> tuple[int, bytes, list[tuple[int, str, str]], bytes]:
    """Head seq and link hash, (seq, type, event id) of every event, and all their stored bytes."""
    async with node.storage.engine.connect() as conn:
        head = (await conn.execute(select(networks.c.head_seq, networks.c.head_hash)
                                   .where(networks.c.name == NETWORK))).one()
        rows = (await conn.execute(select(network_events.c.seq, network_events.c.type, network_events.c.event_id,
                                          network_events.c.wire).order_by(network_events.c.seq))).all()
    return head.head_seq, head.head_hash, [(r.seq, r.type, r.event_id) for r in rows], b"".join(r.wire for r in rows)


async def test_a_later_member_gets_stubs_that_verify_and_nothing_of_what_was_said(pair, tmp_path):
    acme, globex = pair
    ops = await acme.create("agent", "ops", "Customer Ops Agent")
    alex = await acme.create("person", "alex", "Alex")
    sam = await globex.create("person", "sam", "Sam")
    await acme.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Rollout", "history_visible": False},
                     expect=201)
    for ref in ("agent:ops", "person:alex"):
        await acme.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": ref})
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads", {
        "name": "internal-prep", "title": "Prep", "participants": [f"agent:ops@{ACME}", f"person:alex@{ACME}"]},
        expect=201)
    for body, token in zip(BEFORE, (ops, alex), strict=True):
        await acme.client(token, "POST", f"/v1/networks/{NETWORK}/threads/internal-prep/messages", {"body": body},
                          expect=201)

    invite = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                              {"server": GLOBEX, "endpoint": globex.endpoint}, expect=201)
    (shown,) = (await globex.admin("GET", "/v1/invites"))["items"]
    assert shown["history_visible"] is False  # Globex's operator sees it before accepting
    await globex.admin("POST", f"/v1/invites/{invite['id']}/accept")
    await eventually(lambda: _member(globex))
    await globex.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "person:sam"})

    async def attached() -> bool:
        network = await acme.admin("GET", f"/v1/networks/{NETWORK}")
        return any(p["id"] == f"person:sam@{GLOBEX}" and p["attached"] for p in network["participants"])

    await eventually(attached)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads", {
        "name": THREAD, "title": "Rollout status", "participants": [f"person:alex@{ACME}", f"person:sam@{GLOBEX}"]},
        expect=201)
    await acme.client(alex, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages", {"body": "welcome, Globex"},
                      expect=201)

    async def in_step() -> bool:
        return (await _chain(globex))[:2] == (await _chain(acme))[:2]

    await eventually(in_step)
    acme_head, acme_hash, acme_events, _ = await _chain(acme)
    globex_head, globex_hash, globex_events, globex_wires = await _chain(globex)
    # The same chain, link for link: same ids at the same places, the same head hash.
    assert (globex_head, globex_hash) == (acme_head, acme_hash)
    assert [(s, i) for s, _t, i in globex_events] == [(s, i) for s, _t, i in acme_events]
    stubs = [s for s, t, _i in globex_events if t == "stub"]
    assert stubs == [s for s, t, _i in acme_events if t == "message.posted"][:2]  # the two before admission
    assert b"SECRET-BEFORE" not in globex_wires and b"SECRET-BEFORE" in (await _chain(acme))[3]
    assert b"internal-prep" in globex_wires  # lifecycle events go in full: who took part, not what was said
    # What came after admission is seen in full.
    async def welcomed() -> bool:
        page = await globex.client(sam, "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages")
        return [m["body"] for m in page["messages"]] == ["welcome, Globex"]

    await eventually(welcomed)

    # Globex's copy exports and verifies offline, stubs included.
    out = tmp_path / "globex-copy.json"
    assert (await _cli(globex, "export", NETWORK, "-o", str(out)))[0] == 0
    checked = _verify_elsewhere(tmp_path, str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "VERIFIED" in checked.stdout and "2 of them are messages this copy holds as their place only" in \
        checked.stdout
    # A stub with another event id at the same place breaks the chain at that seq.
    document = json.loads(out.read_text())
    first = next(i for i, e in enumerate(document["events"]) if e.get("stub"))
    document["events"][first]["event_id"] = "$" + "A" * 43
    out.write_text(json.dumps(document))
    broken = _verify_elsewhere(tmp_path, str(out))
    assert broken.returncode == 1 and f"NOT VERIFIED at seq {first + 1}" in broken.stdout


async def test_a_stub_where_history_is_visible_is_refused(pair):
    """A host (here Acme, turned hostile) cannot hide messages from a member of a network whose
    history is visible: a stub, correctly signed and linked, is refused and the member halts."""
    acme, globex = pair
    ops = await acme.create("agent", "ops", "Ops")
    await acme.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Rollout"}, expect=201)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "agent:ops"})
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads", {
        "name": THREAD, "title": "T", "participants": [f"agent:ops@{ACME}"]}, expect=201)
    invite = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                              {"server": GLOBEX, "endpoint": globex.endpoint}, expect=201)
    await globex.admin("POST", f"/v1/invites/{invite['id']}/accept")
    await eventually(lambda: _member(globex))
    await eventually(lambda: _same_head(acme, globex))
    await acme.admin("POST", f"/v1/peers/{GLOBEX}/block")  # the real event is not pushed meanwhile
    posted = await acme.client(ops, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages", {"body": "hi"},
                               expect=201)
    async with acme.storage.engine.connect() as conn:
        wire = (await conn.execute(select(network_events.c.wire).where(
            network_events.c.event_id == posted["id"]))).scalar_one()
    stub = StubEvent.of(SequencedEvent.from_wire(json.loads(wire)))
    head = await _chain(globex)
    assert stub.seq == head[0] + 1
    inbound = globex.parts.catch_up._inbound
    (result,) = await inbound.accept([json.loads(encode_canonical(stub.to_wire()))], via=ACME)
    assert (result["status"], result["reason"]) == (403, "history_visible")
    assert (await _chain(globex))[:3] == head[:3]  # nothing stored
    assert (await globex.admin("GET", f"/v1/networks/{NETWORK}"))["halted"]["code"] == "forbidden"


async def _same_head(a: ClusterNode, b: ClusterNode) -> bool:
    return (await _chain(a))[:2] == (await _chain(b))[:2]


async def _member(node: ClusterNode) -> bool:
    return (await node.admin("GET", f"/v1/networks/{NETWORK}"))["members"].get(node.server) == "member"
