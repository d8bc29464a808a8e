"""Applications on two real nodes over TLS: one integration with one token and one feed acts as
several of its company's agents (Act-As), and never as anyone else."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from node.client.agent_client import AgentClient
from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import GLOBEX, NETWORK, THREAD, open_rollout
from tests.node.webhooks.test_webhooks import receivers, register  # noqa: F401 (a fixture)

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
DELIVERY = f"agent:delivery@{GLOBEX}"
HELPER = f"agent:helper@{GLOBEX}"


async def _fleet(globex: ClusterNode) -> str:
    """Globex's application `fleet`, acting as delivery (in the rollout) and helper (in a private thread)."""
    await globex.create("agent", "helper", "Helper Agent")
    await globex.admin("POST", "/v1/threads", {"name": "helper-notes", "title": "Helper", "members": ["agent:helper"]})
    await globex.admin("POST", "/v1/threads", {"name": "sam-notes", "title": "Sam's", "members": ["person:sam"]})
    token = await globex.create("app", "fleet", "Globex agent fleet")
    assert token.startswith("anapp_")
    set_to = await globex.admin("PUT", "/v1/apps/fleet/agents", {"agents": ["delivery", "helper"]})
    assert set_to["app"] == f"app:fleet@{GLOBEX}" and [a["id"] for a in set_to["agents"]] == [DELIVERY, HELPER]
    return token


async def _count(node: ClusterNode, token: str) -> int:
    return len((await node.client(token, "GET", f"{MESSAGES}?limit=200"))["messages"])


async def test_an_application_reads_one_feed_for_its_agents_and_posts_as_each(pair, receivers):  # noqa: F811
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    app = await _fleet(globex)
    me = await globex.client(app, "GET", "/v1/whoami")
    assert (me["id"], me["kind"]) == (f"app:fleet@{GLOBEX}", "app")
    start = (await globex.client(app, "GET", "/v1/events"))["next_cursor"]
    hook = await receivers()
    await register(globex, app, hook)

    asked = await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "Delivery, is the fix in?",
                                                                   "mentions": [DELIVERY]}, expect=201)
    await globex.client(tokens["sam"], "POST", "/v1/threads/sam-notes/messages", {"body": "not the fleet's"})
    helper_note = await globex.client(app, "POST", "/v1/threads/helper-notes/messages", {"body": "checked logs"},
                                      headers={"Act-As": "helper"})
    assert helper_note["sender"] == HELPER

    async def feed() -> list[tuple[str, str | None, list[str]]]:
        page = await globex.client(app, "GET", f"/v1/events?after={start}")
        return [(e["body"], e["thread"], e["audience"]) for e in page["events"] if e["type"] == "message.posted"]

    async def both() -> bool:
        return len(await feed()) == 2

    await eventually(both)
    # The union of its agents' feeds, each event naming the agent it concerns; Sam's thread is not in it.
    assert sorted(await feed()) == [("Delivery, is the fix in?", THREAD, [DELIVERY]),
                                    ("checked logs", "helper-notes", [HELPER])]
    mentioned = await globex.client(app, "GET", f"/v1/events?after={start}&mentions=me")
    assert [e["id"] for e in mentioned["events"]] == [asked["id"]]  # a mention of any of its agents
    streamed = await _first_streamed(globex, app, start)
    assert streamed["audience"] in ([DELIVERY], [HELPER])

    # It answers as delivery: the partner sees delivery's message, signed by Globex's node.
    before = await _count(acme, tokens["alex"])
    answer = await globex.client(app, "POST", MESSAGES, {"body": "Yes, since 10:00", "reply_to": asked["id"]},
                                 headers={"Act-As": "agent:delivery"}, expect=201)
    assert answer["sender"] == DELIVERY

    async def answered() -> bool:
        page = await acme.client(tokens["alex"], "GET", MESSAGES)
        return any(m["id"] == answer["id"] and m["sender"] == DELIVERY for m in page["messages"])

    await eventually(answered)
    # One webhook for the whole fleet, with the audience.
    async def delivered() -> bool:
        return len(hook.accepted) >= 3

    await eventually(delivered)
    assert {tuple(p["data"]["audience"]) for _id, p in hook.accepted} == {(DELIVERY,), (HELPER,)}
    assert await _count(acme, tokens["alex"]) == before + 1
    async with AgentClient(f"http://127.0.0.1:{globex.ports['client']}", app, act_as="delivery") as client:
        assert (await client.whoami()).id == DELIVERY
        posted = await client.post(THREAD, "Sent through the Python client", network=NETWORK)
        assert posted.sender == DELIVERY


async def test_an_application_acts_only_as_its_agents_with_its_own_scopes(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    app = await _fleet(globex)
    before = await _count(globex, tokens["sam"])
    post = {"body": "from the fleet"}

    refused = await globex.client(app, "POST", MESSAGES, post, expect=400)
    assert refused["error"]["code"] == "act_as_required" and "Act-As" in refused["error"]["message"]
    for who in ("sam", "person:sam", "ops"):  # a person, and a name it was not given
        refused = await globex.client(app, "POST", MESSAGES, post, headers={"Act-As": who},
                                      expect=422 if who == "person:sam" else 403)
        assert refused["error"]["code"] == ("invalid_request" if who == "person:sam" else "act_as_refused")
    refused = await globex.client(tokens["delivery"], "POST", MESSAGES, post, headers={"Act-As": "helper"},
                                  expect=400)
    assert refused["error"]["code"] == "act_as_not_allowed"  # an agent cannot borrow another's identity
    # helper is the fleet's but not in the thread: for helper the thread is not there.
    await globex.client(app, "POST", MESSAGES, post, headers={"Act-As": "helper"}, expect=404)

    # Its scopes are its token's: a read-only token reads as delivery but may not post.
    reader = (await globex.admin("POST", "/v1/apps/fleet/tokens", {"scopes": ["read"]}))["token"]
    await globex.client(reader, "GET", MESSAGES, headers={"Act-As": "delivery"})
    refused = await globex.client(reader, "POST", MESSAGES, post, headers={"Act-As": "delivery"}, expect=403)
    assert refused["error"]["code"] == "insufficient_scope"

    # A disabled agent, and an agent taken off its list, are refused at once.
    await globex.admin("POST", "/v1/agents/delivery/disable")
    refused = await globex.client(app, "POST", MESSAGES, post, headers={"Act-As": "delivery"}, expect=403)
    assert "disabled" in refused["error"]["message"]
    await globex.admin("POST", "/v1/agents/delivery/enable")
    await globex.admin("PUT", "/v1/apps/fleet/agents", {"agents": ["helper"]})
    await globex.client(app, "POST", MESSAGES, post, headers={"Act-As": "delivery"}, expect=403)
    assert await _count(globex, tokens["sam"]) == before  # nothing of the above was stored or sent
    await globex.admin("PUT", "/v1/apps/fleet/agents", {"agents": ["nobody"]}, expect=404)

    # An application is never a participant, and its revoked token is refused.
    bad = await globex.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "app:fleet"},
                             expect=422)
    assert bad["error"]["code"] == "invalid_request"
    await globex.admin("POST", "/v1/apps/fleet/tokens/revoke")
    await globex.client(app, "GET", "/v1/events", expect=401)
    audit = await globex.admin("GET", "/v1/audit?limit=200")
    assert any(e["action"] == "app.agents" and e["detail"]["agents"] == ["helper"] for e in audit["items"])
    assert [a["id"] for a in (await globex.admin("GET", "/v1/apps"))["items"]] == [f"app:fleet@{GLOBEX}"]


async def _first_streamed(node: ClusterNode, token: str, after: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{node.ports['client']}/v1/events/stream?after={after}",
            headers={"Authorization": f"Bearer {token}"}) as stream:
        async with asyncio.timeout(15):
            async for line in stream.content:
                if line.startswith(b"data: ") and "id" in (data := json.loads(line[6:])):
                    return data
    raise AssertionError("the stream ended")
