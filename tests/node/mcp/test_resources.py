"""Shared threads as MCP resources on two real nodes, with the official Python SDK: the list is
the caller's threads, a read is the latest messages, and `subscriptions/listen` tells of a
partner's post; a thread the caller is not in can be neither read nor followed, and a revoked
token ends the stream."""

from __future__ import annotations

import asyncio
import json

import pytest
from mcp.client.subscriptions import SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from node.mcp.resources import LISTEN_RECHECK_S, thread_uri
from tests.node.mcp.test_mcp import mcp
from tests.node.networks.test_seed_scenario import NETWORK, THREAD, open_rollout

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
URI = thread_uri(NETWORK, THREAD)


async def test_a_partner_s_post_is_told_to_a_listener_of_the_thread(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads",
                     {"name": "acme-only", "title": "Acme only", "participants": [f"agent:ops@{acme.server}"]},
                     expect=201)
    async with mcp(globex, tokens["delivery"]) as delivery:
        listed = await delivery.list_resources()
        assert [(r.uri, r.title) for r in listed.resources] == [(URI, "Rollout status")]  # not acme-only
        async with delivery.listen(resource_subscriptions=[URI]) as changes:
            posted = await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "Ready for the cutover?"},
                                       expect=201)
            event = await asyncio.wait_for(changes.__anext__(), 20)
            assert event == ResourceUpdated(URI)
        read = await delivery.read_resource(URI)
        page = json.loads(read.contents[0].text)
        assert [m["id"] for m in page["messages"]][-1] == posted["id"]

        for uri in (thread_uri(NETWORK, "acme-only"), thread_uri("elsewhere", THREAD), "file:///etc/passwd"):
            with pytest.raises(MCPError, match="not a shared thread you take part in"):
                async with delivery.listen(resource_subscriptions=[uri]):
                    pass
        with pytest.raises(MCPError, match="no shared thread"):
            await delivery.read_resource(thread_uri(NETWORK, "acme-only"))


async def test_a_revoked_token_ends_the_listen(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    async with mcp(globex, tokens["delivery"]) as delivery, delivery.listen(resource_subscriptions=[URI]) as changes:
        await globex.admin("POST", "/v1/agents/delivery/tokens/revoke")
        with pytest.raises((SubscriptionLost, StopAsyncIteration)):
            await asyncio.wait_for(changes.__anext__(), LISTEN_RECHECK_S + 10)
