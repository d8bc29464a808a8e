"""Kill switches between two real nodes over TLS: pause an agent everywhere, revoke every token
of an agent, silence agents in one thread (the host's, kept in the chain and enforced on every
node), and freeze a network on this company's side; each audited."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


async def _stream_ends(node: ClusterNode, token: str, switch) -> str:
    """Open the agent's event stream, flip `switch`, and return how the stream ended."""
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{node.ports['client']}/v1/events/stream",
            headers={"Authorization": f"Bearer {token}"}) as stream:
        assert stream.status == 200
        await switch()
        async with asyncio.timeout(10):
            return (await stream.read()).decode()


async def _bodies(node: ClusterNode, token: str, path: str = MESSAGES) -> list[str]:
    return [m["body"] for m in (await node.client(token, "GET", f"{path}?limit=200"))["messages"]]


async def test_pausing_an_agent_stops_it_everywhere_at_once(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await acme.admin("POST", "/v1/networks", {"name": "incident-7", "title": "Incident"}, expect=201)
    await acme.admin("POST", "/v1/networks/incident-7/participants", {"participant": "agent:ops"})
    await acme.admin("POST", "/v1/networks/incident-7/threads",
                     {"name": "triage", "title": "Triage", "participants": [f"agent:ops@{ACME}"]}, expect=201)
    ended = await _stream_ends(acme, tokens["ops"], lambda: acme.admin("POST", "/v1/agents/ops/disable"))
    assert "token was revoked or expired, or its owner disabled" in ended
    for path in (MESSAGES, "/v1/networks/incident-7/threads/triage/messages", "/v1/threads/billing-escalations/messages"):
        refused = await acme.client(tokens["ops"], "POST", path, {"body": "still here?"}, expect=401)
        assert refused["error"]["code"] == "unauthorized"
    await acme.admin("POST", "/v1/agents/ops/enable")
    await acme.client(tokens["ops"], "POST", "/v1/networks/incident-7/threads/triage/messages", {"body": "back"},
                      expect=201)
    assert [e["action"] for e in (await acme.admin("GET", "/v1/audit?action=agent."))["items"]][:2] == [
        "agent.enable", "agent.disable"]


async def test_revoking_every_token_of_an_agent(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    second = (await acme.admin("POST", "/v1/agents/ops/tokens", {}, expect=201))["token"]
    ended = await _stream_ends(acme, second, lambda: acme.admin("POST", "/v1/agents/ops/tokens/revoke"))
    assert "token was revoked" in ended
    for token in (tokens["ops"], second):
        await acme.client(token, "POST", MESSAGES, {"body": "hello"}, expect=401)
    listed = (await acme.admin("GET", "/v1/agents/ops/tokens"))["items"]
    assert len(listed) == 2 and not any(t["active"] for t in listed)
    (entry,) = (await acme.admin("GET", "/v1/audit?action=agent.token_revoke_all"))["items"]
    assert entry["detail"] == {"revoked": 2} and entry["target"] == f"agent:ops@{ACME}"
    fresh = (await acme.admin("POST", "/v1/agents/ops/tokens", {}, expect=201))["token"]  # still enabled
    await acme.client(fresh, "POST", MESSAGES, {"body": "with a new token"}, expect=201)
    await acme.admin("POST", "/v1/agents/nobody/tokens/revoke", expect=404)


async def test_the_host_silences_agents_in_a_thread_on_every_node(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    refused = await globex.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/silence", {"agents": True},
                                 expect=403)
    assert refused["error"]["reason"] == "not_host"
    shown = await acme.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/silence", {"agents": True})
    assert [t["agents_silenced"] for t in shown["threads"] if t["name"] == THREAD] == [True]

    async def silenced_at_globex() -> bool:
        network = await globex.admin("GET", f"/v1/networks/{NETWORK}")
        return [t["agents_silenced"] for t in network["threads"] if t["name"] == THREAD] == [True]

    await eventually(silenced_at_globex)
    sent_before = len(globex.sent)
    for node, agent in ((globex, "delivery"), (acme, "ops")):  # refused on the author's own node, any company
        refused = await node.client(tokens[agent], "POST", MESSAGES, {"body": "an agent speaks"}, expect=403)
        assert refused["error"]["reason"] == "agents_silenced"
    assert not any(b"an agent speaks" in chunk for chunk in globex.sent[sent_before:])
    await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "a person speaks"}, expect=201)
    await eventually(lambda: _has(acme, tokens["alex"], "a person speaks"))
    (entry,) = (await globex.admin("GET", "/v1/audit?action=thread.silenced"))["items"]
    assert entry["partner"] == ACME and entry["actor"] == f"operator:admin@{ACME}"

    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/silence", {"agents": False})
    await eventually(lambda: _posts(globex, tokens["delivery"], "agents again"))
    await eventually(lambda: _has(acme, tokens["alex"], "agents again"))
    assert [e["action"] for e in (await acme.admin("GET", "/v1/audit?action=thread."))["items"]][:2] == [
        "thread.unsilence", "thread.silence"]


async def _has(node: ClusterNode, token: str, body: str) -> bool:
    return body in await _bodies(node, token)


async def _posts(node: ClusterNode, token: str, body: str) -> bool:
    """Whether a post is accepted yet (the member learns of the lifted silence from the host)."""
    return bool(await node.client(token, "POST", MESSAGES, {"body": body}, expect=None) and
                body in await _bodies(node, token))


async def test_freezing_a_network_stops_this_company_only(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    frozen = await globex.admin("POST", f"/v1/networks/{NETWORK}/freeze")
    assert frozen["frozen_at"] is not None
    await globex.admin("POST", f"/v1/networks/{NETWORK}/freeze", expect=409)
    sent_before = len(globex.sent)
    for who in ("delivery", "sam"):
        refused = await globex.client(tokens[who], "POST", MESSAGES, {"body": "from a frozen side"}, expect=409)
        assert refused["error"]["code"] == "network_frozen"
    assert not any(b"from a frozen side" in chunk for chunk in globex.sent[sent_before:])
    # The partner carries on, and Globex still receives; Acme's own people are not frozen.
    await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "Acme still talks"}, expect=201)
    await eventually(lambda: _has(globex, tokens["sam"], "Acme still talks"))
    await globex.admin("POST", f"/v1/networks/{NETWORK}/unfreeze")
    await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "thawed"}, expect=201)
    await eventually(lambda: _has(acme, tokens["alex"], "thawed"))
    actions = [e["action"] for e in (await globex.admin("GET", f"/v1/audit?network={NETWORK}&action=network."))["items"]]
    assert actions[:2] == ["network.unfreeze", "network.freeze"]
    # Leaving stays one command, frozen or not.
    await globex.admin("POST", f"/v1/networks/{NETWORK}/freeze")
    left = await globex.admin("POST", f"/v1/networks/{NETWORK}/leave")
    assert left["members"][GLOBEX] in ("member", "left")
