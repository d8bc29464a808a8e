"""Invites: default-deny until an operator accepts; declines and expiry on both sides."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from storage.network.tables import network_invites
from tests.cluster import eventually, start_node
from tests.tls_fixtures import TestCertificateAuthority

NETWORK = "acme-rollout"


@pytest.fixture
async def pair(tmp_path):
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, "acme.example", ca)
    globex = await start_node(tmp_path, "globex.example", ca)
    await acme.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Rollout"}, expect=201)
    yield acme, globex
    await globex.stop()
    await acme.stop()


async def _invite(acme, globex) -> str:
    sent = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                            {"server": globex.server, "endpoint": globex.endpoint}, expect=201)
    return sent["id"]


async def _expire(node, invite_id: str) -> None:
    async with node.storage.network_transaction() as tx:
        await tx.peers._conn.execute(update(network_invites).where(network_invites.c.id == invite_id)
                                     .values(expires_at=1))


async def test_an_invite_alone_makes_no_peer(pair):
    acme, globex = pair
    await _invite(acme, globex)
    assert (await globex.admin("GET", "/v1/peers"))["items"] == []
    assert (await acme.admin("GET", "/v1/peers"))["items"] == []
    assert (await globex.admin("GET", "/v1/networks"))["items"] == []


async def test_decline_is_recorded_on_both_sides_and_changes_nothing_else(pair):
    acme, globex = pair
    invite_id = await _invite(acme, globex)
    declined = await globex.admin("POST", f"/v1/invites/{invite_id}/decline")
    assert declined["status"] == "declined"
    (outgoing,) = (await acme.admin("GET", "/v1/invites"))["items"]
    assert outgoing["status"] == "declined"
    again = await globex.admin("POST", f"/v1/invites/{invite_id}/accept", expect=409)
    assert again["error"]["code"] == "conflict"
    assert (await globex.admin("GET", "/v1/networks"))["items"] == []
    assert (await acme.admin("GET", f"/v1/networks/{NETWORK}"))["members"] == {acme.server: "member"}


async def test_an_expired_invite_cannot_be_accepted(pair):
    acme, globex = pair
    invite_id = await _invite(acme, globex)
    await _expire(globex, invite_id)
    refused = await globex.admin("POST", f"/v1/invites/{invite_id}/accept", expect=410)
    assert refused["error"]["code"] == "gone"
    (listed,) = (await globex.admin("GET", "/v1/invites"))["items"]
    assert listed["status"] == "expired"


async def test_the_host_refuses_an_accept_after_its_invite_expired(pair):
    acme, globex = pair
    invite_id = await _invite(acme, globex)
    await _expire(acme, invite_id)
    refused = await globex.admin("POST", f"/v1/invites/{invite_id}/accept", expect=502)
    assert refused["error"]["code"] == "peer_refused" and "gone" in refused["error"]["message"]
    assert (await globex.admin("GET", "/v1/networks"))["items"] == []  # nothing half-joined
    (pending,) = (await globex.admin("GET", "/v1/invites"))["items"]
    assert pending["status"] == "pending"
    assert (await acme.admin("GET", f"/v1/networks/{NETWORK}"))["members"] == {acme.server: "member"}


async def test_only_the_host_invites_and_not_itself(pair):
    acme, globex = pair
    own = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites", {"server": acme.server}, expect=422)
    assert own["error"]["code"] == "invalid_request"
    unknown = await globex.admin("POST", f"/v1/networks/{NETWORK}/invites", {"server": acme.server}, expect=404)
    assert unknown["error"]["code"] == "not_found"
    unreachable = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                                   {"server": "nowhere.example", "endpoint": "https://127.0.0.1:1"}, expect=502)
    assert unreachable["error"]["code"] == "peer_unreachable"
    assert (await acme.admin("GET", "/v1/invites"))["items"] == []


def test_invite_ids_never_look_like_a_command_line_option():
    """`agentnet invite accept ID` must take any id as the id: none starts with "-"."""
    from node.federation.peering import new_invite_id

    ids = {new_invite_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in ids)


async def test_both_sides_audit_the_invite_and_the_admission(pair):
    acme, globex = pair
    invite_id = await _invite(acme, globex)
    await globex.admin("POST", f"/v1/invites/{invite_id}/accept")

    async def audited(node, partner) -> list[str]:
        items = (await node.admin("GET", f"/v1/audit?partner={partner}&network={NETWORK}"))["items"]
        return [e["action"] for e in reversed(items)]

    async def admitted() -> bool:
        return "member.admitted" in await audited(globex, acme.server)

    await eventually(admitted)
    assert await audited(globex, acme.server) == ["invite.received", "invite.accept", "network.created",
                                                      "member.admitted"]
    assert await audited(acme, globex.server) == ["network.invite", "invite.accepted"]
    for node in (acme, globex):
        assert (await node.admin("GET", "/v1/audit/verify"))["ok"]


async def test_a_withdrawn_invite_cannot_be_accepted(pair):
    acme, globex = pair
    invite_id = await _invite(acme, globex)
    withdrawn = await acme.admin("POST", f"/v1/invites/{invite_id}/withdraw")
    assert withdrawn["status"] == "withdrawn"
    await acme.admin("POST", f"/v1/invites/{invite_id}/withdraw", expect=409)
    await globex.admin("POST", f"/v1/invites/{invite_id}/withdraw", expect=404)  # not the invitee's to withdraw
    refused = await globex.admin("POST", f"/v1/invites/{invite_id}/accept", expect=502)
    assert "withdrawn" in refused["error"]["message"]
    network = await acme.admin("GET", f"/v1/networks/{NETWORK}")
    assert "globex.example" not in network["members"] or network["members"]["globex.example"] != "member"
    (entry,) = (await acme.admin("GET", "/v1/audit?action=invite.withdraw"))["items"]
    assert entry["partner"] == "globex.example" and entry["actor"].startswith("admin:")
