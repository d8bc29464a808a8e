"""Mentions on two real nodes over TLS: a message names the participants it addresses, checked
by the rules on every node, and an agent of the other company waits for mentions of itself only
(long poll, the event stream, MCP and the Python client), without keyword rules."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from node.client.agent_client import AgentClient
from tests.cluster import ClusterNode, eventually
from tests.node.federation.test_lifecycle import NETWORK as INCIDENT
from tests.node.federation.test_lifecycle import SERVERS, incident
from tests.node.federation.test_lifecycle import THREAD as BRIDGE
from tests.node.mcp.test_mcp import call, mcp
from tests.node.networks.test_seed_scenario import GLOBEX, NETWORK, THREAD, open_rollout

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
ACME_SERVER, _, INITECH_SERVER = SERVERS
DELIVERY = f"agent:delivery@{GLOBEX}"


async def _stream_first(node: ClusterNode, token: str, after: str) -> dict:
    """The first event the stream filtered to mentions of the caller sends."""
    return (await _stream_types(node, token, f"mentions=me&after={after}", 1))[0]


async def test_an_agent_waits_for_mentions_of_itself_only(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    start = (await globex.client(tokens["delivery"], "GET", "/v1/events"))["next_cursor"]
    for i in range(3):
        await acme.client(tokens["alex"], "POST", MESSAGES, {"body": f"chatter {i}"}, expect=201)
    asked = await acme.client(tokens["alex"], "POST", MESSAGES,
                              {"body": "Can you confirm the retry fix?", "mentions": [DELIVERY]}, expect=201)
    assert asked["mentions"] == [DELIVERY]

    async def mentioned() -> list[str]:
        page = await globex.client(tokens["delivery"], "GET", f"/v1/events?after={start}&mentions=me")
        return [e["id"] for e in page["events"]]

    assert await eventually(mentioned) == [asked["id"]]
    everything = await globex.client(tokens["delivery"], "GET", f"/v1/events?after={start}")
    assert len([e for e in everything["events"] if e["type"] == "message.posted"]) == 4
    # Sam (Globex, not mentioned) sees nothing with the filter.
    sam = await globex.client(tokens["sam"], "GET", "/v1/events?after=0&mentions=me")
    assert sam["events"] == []
    # The stream filtered the same way skips the chatter.
    first = await _stream_first(globex, tokens["delivery"], start)
    assert first["id"] == asked["id"] and first["mentions"] == [DELIVERY]
    # Shown in reads on both nodes.
    page = await globex.client(tokens["sam"], "GET", MESSAGES)
    assert [m["mentions"] for m in page["messages"] if m["id"] == asked["id"]] == [[DELIVERY]]

    # A mention must be a participant of the thread: refused on the author's node, nothing sent.
    outsider = f"agent:helper@{GLOBEX}"
    refused = await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "hi", "mentions": [outsider]},
                                expect=403)
    assert refused["error"]["reason"] == "mention_not_participant"
    await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "hi", "mentions": ["agent:Bad"]}, expect=422)

    # MCP and the Python client.
    async with mcp(globex, tokens["delivery"]) as delivery, mcp(acme, tokens["ops"]) as ops:
        cursor = (await call(delivery, "wait_for_messages", timeout_seconds=0))["next_cursor"]
        waiting = asyncio.create_task(call(delivery, "wait_for_messages", after=cursor, timeout_seconds=30,
                                           mentions_only=True))
        await call(ops, "post_message", network=NETWORK, thread=THREAD, body="not for you")
        posted = await call(ops, "post_message", network=NETWORK, thread=THREAD, body="@delivery status?",
                            mentions=[DELIVERY])
        seen = await asyncio.wait_for(waiting, 30)
        assert [e["id"] for e in seen["events"]] == [posted["id"]]
    async with AgentClient(f"http://127.0.0.1:{globex.ports['client']}", tokens["delivery"]) as client:
        page = await client.events(start, mentions_only=True)
        assert [e.id for e in page.events] == [asked["id"], posted["id"]]


async def _stream_types(node: ClusterNode, token: str, query: str, count: int) -> list[dict]:
    """The first `count` events of the stream opened with `query`."""
    found: list[dict] = []
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{node.ports['client']}/v1/events/stream?{query}",
            headers={"Authorization": f"Bearer {token}"}) as stream:
        async with asyncio.timeout(15):
            async for line in stream.content:
                if line.startswith(b"data: ") and "id" in (data := json.loads(line[6:])):
                    found.append(data)  # an event (the stream's own frames, like its cursor, have no id)
                    if len(found) == count:
                        return found
    raise AssertionError(f"only {found}")


async def test_subscribers_follow_a_network_a_thread_or_event_types(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    start = (await globex.client(tokens["delivery"], "GET", "/v1/events"))["next_cursor"]
    await globex.client(tokens["delivery"], "POST", "/v1/threads/internal-qa/messages", {"body": "private note"},
                        expect=201)
    shared = await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "Status?"}, expect=201)
    await eventually(lambda: globex.client(tokens["delivery"], "GET", f"{MESSAGES}"))
    await globex.client(tokens["delivery"], "POST", f"{MESSAGES}/{shared['id']}/reactions", {"reaction": "seen"},
                        expect=201)

    async def page(query: str) -> list[tuple[str, str | None]]:
        got = await globex.client(tokens["delivery"], "GET", f"/v1/events?after={start}&{query}")
        return [(e["type"], e["thread"]) for e in got["events"]]

    async def settled() -> bool:
        return len(await page("limit=200")) >= 3

    await eventually(settled)
    assert await page(f"network={NETWORK}&types=message.posted") == [("message.posted", THREAD)]
    assert await page("thread=internal-qa") == [("message.posted", "internal-qa")]
    assert await page(f"network={NETWORK}&thread={THREAD}&types=message.reacted") == [("message.reacted", THREAD)]
    assert await page("network=elsewhere") == []
    bad = await globex.client(tokens["delivery"], "GET", f"/v1/events?after={start}&types=posted", expect=422)
    assert "event types separated by commas" in bad["error"]["message"]
    streamed = await _stream_types(globex, tokens["delivery"], f"after={start}&types=message.reacted", 1)
    assert streamed[0]["type"] == "message.reacted" and streamed[0]["content"]["reaction"] == "seen"

    async with mcp(globex, tokens["delivery"]) as delivery:
        seen = await call(delivery, "wait_for_messages", after=start, timeout_seconds=0, thread="internal-qa")
        assert [e["body"] for e in seen["events"]] == ["private note"]
    async with AgentClient(f"http://127.0.0.1:{globex.ports['client']}", tokens["delivery"]) as client:
        got = await client.events(start, network=NETWORK, types=["message.posted", "message.reacted"])
        assert [e.type for e in got.events] == ["message.posted", "message.reacted"]
        async with client.stream(start, thread="internal-qa") as events:
            first = await asyncio.wait_for(events.__anext__(), 15)
            assert first.body == "private note"


async def test_across_three_nodes_a_reply_with_a_mention_wakes_only_the_agent_it_names(three):
    acme, globex, initech = three
    tokens = await incident(three)
    bridge = f"/v1/networks/{INCIDENT}/threads/{BRIDGE}/messages"
    async with mcp(initech, tokens[INITECH_SERVER]) as named, mcp(globex, tokens[GLOBEX]) as other:
        start_named = (await call(named, "wait_for_messages", timeout_seconds=0))["next_cursor"]
        start_other = (await call(other, "wait_for_messages", timeout_seconds=0))["next_cursor"]
        waiting = asyncio.create_task(call(named, "wait_for_messages", after=start_named, timeout_seconds=30,
                                           mentions_only=True))
        question = await globex.client(tokens[GLOBEX], "POST", bridge, {"body": "Who owns the DNS switch?"},
                                       expect=201)
        await eventually(lambda: _has_message(acme, tokens[ACME_SERVER], bridge, question["id"]))
        answer = await acme.client(tokens[ACME_SERVER], "POST", bridge, {
            "body": "Initech does: can you confirm?", "reply_to": question["id"],
            "mentions": [f"agent:oncall@{INITECH_SERVER}"]}, expect=201)
        woken = await asyncio.wait_for(waiting, 30)
        assert [(e["id"], e["content"]["reply_to"]) for e in woken["events"]] == [(answer["id"], question["id"])]
        quiet = await call(other, "wait_for_messages", after=start_other, timeout_seconds=1, mentions_only=True)
        assert quiet["events"] == []  # Globex's agent was not named: nothing wakes it


async def _has_message(node: ClusterNode, token: str, path: str, event_id: str) -> bool:
    return any(m["id"] == event_id for m in (await node.client(token, "GET", path))["messages"])
