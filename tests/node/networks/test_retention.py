"""Retention on two real nodes over TLS: a member removes the bodies of a closed network's
messages from its own copy, and its copy still verifies end to end (same head hash, export
verified offline); the host's copy, and open networks, are untouched; off means nothing goes."""

from __future__ import annotations

from sqlalchemy import select

from storage.network.tables import network_events, networks, shared_files
from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import NETWORK, THREAD, open_rollout
from tests.node.ops.test_export import _cli, _verify_elsewhere

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


async def _stored(node: ClusterNode) -> tuple[bytes, bytes, list[str]]:
    """The network's head hash, every stored byte of its events, and their types."""
    async with node.storage.engine.connect() as conn:
        head = (await conn.execute(select(networks.c.head_hash).where(networks.c.name == NETWORK))).scalar_one()
        rows = (await conn.execute(select(network_events.c.type, network_events.c.wire)
                                   .order_by(network_events.c.seq))).all()
    return head, b"".join(r.wire for r in rows), [r.type for r in rows]


async def test_a_member_removes_bodies_after_close_and_its_copy_still_verifies(pair, tmp_path):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    upload = await globex.upload(tokens["sam"], "notes.txt", b"RETAIN-SECRET-file")
    for i in range(3):
        await globex.client(tokens["sam"], "POST", MESSAGES, {"body": f"RETAIN-SECRET-{i}",
                                                             **({"attachments": [upload["id"]]} if i == 0 else {})},
                            expect=201)
    await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "RETAIN-SECRET-host"}, expect=201)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/close")

    async def closed_at_globex() -> bool:
        network = await globex.admin("GET", f"/v1/networks/{NETWORK}")
        return network["closed"] and network["head_seq"] == (await acme.admin("GET", f"/v1/networks/{NETWORK}"))[
            "head_seq"]

    await eventually(closed_at_globex)
    before = await _stored(globex)

    # Off (the default): nothing goes.
    assert (await globex.admin("POST", "/v1/retention/run")) == {"retain_days_after_close": None, "networks": {}}
    assert await _stored(globex) == before
    # A year: not due yet.
    node = (await globex.admin("GET", "/v1/policy"))["node"]
    await globex.admin("PUT", "/v1/policy/node", {**node, "retain_days_after_close": 365})
    assert (await globex.admin("POST", "/v1/retention/run"))["networks"] == {}
    # At once after close: every message of Globex's copy becomes a stub.
    await globex.admin("PUT", "/v1/policy/node", {**node, "retain_days_after_close": 0})
    ran = await globex.admin("POST", "/v1/retention/run")
    assert ran["networks"] == {NETWORK: 4}
    head, wires, types = await _stored(globex)
    assert head == before[0] and b"RETAIN-SECRET" not in wires
    assert types.count("stub") == 4 and "message.posted" not in types
    async with globex.storage.engine.connect() as conn:  # the file went with its message's body
        assert (await conn.execute(select(shared_files.c.data))).scalars().all() == [None]
    assert (await globex.client(tokens["sam"], "GET", MESSAGES))["messages"] == []
    assert b"RETAIN-SECRET" in (await _stored(acme))[1]  # the host's copy is the host's
    (entry,) = (await globex.admin("GET", "/v1/audit?action=retention."))["items"]
    assert entry["detail"]["messages"] == 4 and entry["network"] == NETWORK
    assert (await globex.admin("POST", "/v1/retention/run"))["networks"] == {}  # nothing left to do

    out = tmp_path / "after-retention.json"
    assert (await _cli(globex, "export", NETWORK, "-o", str(out)))[0] == 0
    checked = _verify_elsewhere(tmp_path, str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 of them are messages this copy holds as their place only" in checked.stdout
    assert "RETAIN-SECRET" not in out.read_text()

    # Put away: out of the operator's and the participants' lists, still whole and exportable.
    threads = (await globex.client(tokens["sam"], "GET", "/v1/shared-threads"))["items"]
    assert [t["network"] for t in threads] == [NETWORK]
    await globex.admin("POST", f"/v1/networks/{NETWORK}/archive")
    assert (await globex.admin("GET", "/v1/networks"))["items"] == []
    assert [n["name"] for n in (await globex.admin("GET", "/v1/networks?archived=true"))["items"]] == [NETWORK]
    assert (await globex.client(tokens["sam"], "GET", "/v1/shared-threads"))["items"] == []
    assert (await _stored(globex))[0] == head
