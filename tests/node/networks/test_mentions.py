"""Mentions on two real nodes over TLS: a message names the participants it addresses, checked
by the rules on every node, and an agent of the other company waits for mentions of itself only
(long poll, the event stream, MCP and the Python client), without keyword rules."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from node.client.agent_client import AgentClient
from tests.cluster import ClusterNode, eventually
from tests.node.mcp.test_mcp import call, mcp
from tests.node.networks.test_seed_scenario import GLOBEX, NETWORK, THREAD, open_rollout

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
DELIVERY = f"agent:delivery@{GLOBEX}"


async def _stream_first(node: ClusterNode, token: str, after: str) -> dict:
    """The first event the stream filtered to mentions of the caller sends."""
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{node.ports['client']}/v1/events/stream?mentions=me&after={after}",
            headers={"Authorization": f"Bearer {token}"}) as stream:
        async with asyncio.timeout(15):
            async for line in stream.content:
                if line.startswith(b"data: ") and "id" in (data := json.loads(line[6:])):
                    return data  # an event (the stream's own frames, like its cursor, have no id)
    raise AssertionError("no event")


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
