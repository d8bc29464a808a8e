"""The MCP endpoint through the official `mcp` client over real HTTP, against assembled nodes:
each tool as the token's own principal, its scopes, its privacy, errors as tool results, and
the long poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.cluster import ClusterNode, eventually, start_node
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout
from tests.tls_fixtures import TestCertificateAuthority

TOOLS = {"list_threads", "read_thread", "post_message", "edit_message", "react", "search_knowledge", "search_messages",
         "list_participants", "open_thread", "add_participants", "set_activity",
         "wait_for_messages"}


@asynccontextmanager
async def mcp(node: ClusterNode, token: str, *, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's own client, sending the bearer token on every request."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(f"http://127.0.0.1:{node.ports['client']}/mcp",
                                                   http_client=http), mode=mode) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> dict:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return result.structured_content["error"]


@pytest.fixture
async def acme(tmp_path) -> AsyncIterator[ClusterNode]:
    node = await start_node(tmp_path, ACME, TestCertificateAuthority(), display_name="Acme")
    yield node
    await node.stop()


async def _company(node: ClusterNode) -> dict[str, str]:
    tokens = {"ops": await node.create("agent", "ops", "Ops"), "alex": await node.create("person", "alex", "Alex"),
              "sam": await node.create("person", "sam", "Sam")}
    await node.admin("POST", "/v1/threads", {"name": "billing-escalations", "title": "Billing escalations",
                                             "members": ["agent:ops", "person:alex"]})
    await node.admin("POST", "/v1/threads", {"name": "internal-qa", "title": "QA", "members": ["person:sam"]})
    await node.client(tokens["sam"], "POST", "/v1/threads/internal-qa/messages", {"body": "sam's secret notes"})
    await node.admin("POST", "/v1/knowledge", {"title": "Runbook", "body": "validate webhook retries before cutover"})
    await node.admin("POST", "/v1/knowledge", {"title": "Ops only", "body": "webhook signing secrets rotate monthly",
                                               "readers": ["agent:ops"]})
    return tokens


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026 stateless era and the initialize handshake
async def test_tools_act_as_the_token_holder(acme, mode):
    tokens = await _company(acme)
    async with mcp(acme, tokens["ops"], mode=mode) as ops:
        assert {t.name for t in (await ops.list_tools()).tools} == TOOLS

        threads = await call(ops, "list_threads")
        assert [t["name"] for t in threads["private"]] == ["billing-escalations"] and threads["shared"] == []

        posted = await call(ops, "post_message", thread="billing-escalations", body="Looking into it.")
        assert posted["sender"] == f"agent:ops@{ACME}" and posted["body"] == "Looking into it."
        await acme.client(tokens["alex"], "POST", "/v1/threads/billing-escalations/messages", {"body": "Thanks"})

        page = await call(ops, "read_thread", thread="billing-escalations", limit=1)
        assert [m["body"] for m in page["messages"]] == ["Looking into it."]
        rest = await call(ops, "read_thread", thread="billing-escalations", after=page["next_cursor"])
        assert [(m["sender"], m["body"]) for m in rest["messages"]] == [(f"person:alex@{ACME}", "Thanks")]

        found = await call(ops, "search_knowledge", query="webhook")
        assert sorted(i["title"] for i in found["items"]) == ["Ops only", "Runbook"]
    via_rest = await acme.client(tokens["alex"], "GET", "/v1/threads/billing-escalations/messages")
    assert [m["body"] for m in via_rest["messages"]] == ["Looking into it.", "Thanks"]


async def test_a_retried_post_with_an_idempotency_key_is_stored_once(acme):
    tokens = await _company(acme)
    async with mcp(acme, tokens["ops"]) as ops:
        first = await call(ops, "post_message", thread="billing-escalations", body="once", idempotency_key="k-1")
        again = await call(ops, "post_message", thread="billing-escalations", body="once", idempotency_key="k-1")
        assert first == again
        reused = await refused(ops, "post_message", thread="billing-escalations", body="other", idempotency_key="k-1")
        assert reused["code"] == "invalid_request"
    page = await acme.client(tokens["alex"], "GET", "/v1/threads/billing-escalations/messages")
    assert [m["body"] for m in page["messages"]] == ["once"]


async def test_callers_see_only_what_they_belong_to(acme):
    tokens = await _company(acme)
    async with mcp(acme, tokens["alex"]) as alex:
        threads = await call(alex, "list_threads")
        assert [t["name"] for t in threads["private"]] == ["billing-escalations"]
        hidden = await refused(alex, "read_thread", thread="internal-qa")
        missing = await refused(alex, "read_thread", thread="no-such-thread")
        assert hidden["code"] == missing["code"] == "not_found" and hidden["status"] == 404
        assert "secret" not in str(hidden)
        assert (await refused(alex, "post_message", thread="internal-qa", body="let me in"))["code"] == "not_found"
        assert (await refused(alex, "read_thread", thread=THREAD, network=NETWORK))["code"] == "not_found"
        found = await call(alex, "search_knowledge", query="webhook")
        assert [i["title"] for i in found["items"]] == ["Runbook"]
        # The session survives its errors.
        assert (await call(alex, "read_thread", thread="billing-escalations"))["messages"] == []
    qa = await acme.client(tokens["sam"], "GET", "/v1/threads/internal-qa/messages")
    assert [m["body"] for m in qa["messages"]] == ["sam's secret notes"]


async def test_token_scopes_are_enforced(acme):
    await _company(acme)
    issued = await acme.admin("POST", "/v1/agents/ops/tokens", {"scopes": ["read"]}, expect=201)
    async with mcp(acme, issued["token"]) as reader:
        assert [t["name"] for t in (await call(reader, "list_threads"))["private"]] == ["billing-escalations"]
        denied = await refused(reader, "post_message", thread="billing-escalations", body="hello")
        assert (denied["status"], denied["code"]) == (403, "insufficient_scope")
        assert (await refused(reader, "search_knowledge", query="webhook"))["code"] == "insufficient_scope"
    assert (await acme.client(issued["token"], "GET", "/v1/threads/billing-escalations/messages"))["messages"] == []
    poster = await acme.admin("POST", "/v1/agents/ops/tokens", {"scopes": ["post"]}, expect=201)
    async with mcp(acme, poster["token"]) as writer:
        assert (await refused(writer, "list_threads"))["code"] == "insufficient_scope"
        assert (await refused(writer, "wait_for_messages", timeout_seconds=0))["code"] == "insufficient_scope"
        await call(writer, "post_message", thread="billing-escalations", body="posted with a post-only token")


async def test_inputs_are_bounded(acme):
    tokens = await _company(acme)
    async with mcp(acme, tokens["ops"]) as ops:
        bad = [
            ("read_thread", {"thread": "billing-escalations", "limit": 201}),
            ("read_thread", {"thread": "billing-escalations", "limit": 0}),
            ("read_thread", {"thread": "../etc", "network": None}),
            ("read_thread", {"thread": "billing-escalations", "after": "not-a-cursor"}),
            ("post_message", {"thread": "billing-escalations", "body": "x" * 16_385}),
            ("post_message", {"thread": "billing-escalations", "body": "   "}),
            ("search_knowledge", {"query": "q" * 501}),
            ("wait_for_messages", {"timeout_seconds": 51}),
            ("wait_for_messages", {"timeout_seconds": -1}),
        ]
        for tool, arguments in bad:
            result = await ops.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments)
    history = await acme.client(tokens["ops"], "GET", "/v1/threads/billing-escalations/messages")
    assert history["messages"] == []


async def test_posting_is_rate_limited_per_token(acme):
    tokens = await _company(acme)
    async with mcp(acme, tokens["ops"]) as ops:
        for attempt in range(100):  # the default burst is 30
            result = await ops.call_tool("post_message", {"thread": "billing-escalations", "body": f"m{attempt}"})
            if result.is_error:
                break
        error = result.structured_content["error"]
        assert (error["status"], error["code"]) == (429, "too_many_requests") and error["retry_after_s"] >= 1
        assert 30 <= attempt < 99  # the burst went through first


async def test_wait_returns_a_message_posted_after_it_started(acme):
    tokens = await _company(acme)
    async with mcp(acme, tokens["ops"]) as ops:
        start = await call(ops, "wait_for_messages", timeout_seconds=0)  # no cursor: from now
        assert start["events"] == []
        began = time.monotonic()
        waiting = asyncio.create_task(call(ops, "wait_for_messages", after=start["next_cursor"], timeout_seconds=30))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await acme.client(tokens["alex"], "POST", "/v1/threads/billing-escalations/messages",
                          {"body": "Can you check the retries?"})
        page = await asyncio.wait_for(waiting, 20)
        assert time.monotonic() - began < 20
        (event,) = page["events"]
        assert (event["scope"], event["thread"], event["sender"], event["body"]) == (
            "private", "billing-escalations", f"person:alex@{ACME}", "Can you check the retries?")
        assert page["next_cursor"] != start["next_cursor"]

        # Nothing new: the wait ends empty when its time is up, with the cursor it was given.
        began = time.monotonic()
        idle = await call(ops, "wait_for_messages", after=page["next_cursor"], timeout_seconds=1)
        assert idle == {"items": [], "events": [], "next_cursor": page["next_cursor"]}  # events: the old name
        assert 0.9 <= time.monotonic() - began < 10


async def test_wait_does_not_show_threads_the_caller_is_not_in(acme):
    tokens = await _company(acme)
    async with mcp(acme, tokens["alex"]) as alex:
        start = await call(alex, "wait_for_messages", timeout_seconds=0)
        await acme.client(tokens["sam"], "POST", "/v1/threads/internal-qa/messages", {"body": "only for sam"})
        page = await call(alex, "wait_for_messages", after=start["next_cursor"], timeout_seconds=1)
        assert page["events"] == []


async def test_requests_without_a_valid_token_are_401(acme):
    url = f"http://127.0.0.1:{acme.ports['client']}/mcp"
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with aiohttp.ClientSession() as http:
        for auth in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic b3BzOm9wcw=="}):
            async with http.post(url, json=initialize, headers={**headers, **auth}) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "unauthorized"
    with pytest.raises(ExceptionGroup) as raised:  # the SDK client cannot even connect
        async with mcp(acme, "not-a-token"):
            pass
    assert raised.group_contains(MCPError)


async def test_no_standalone_stream_in_stateless_mode(acme):
    tokens = await _company(acme)
    url = f"http://127.0.0.1:{acme.ports['client']}/mcp"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Authorization": f"Bearer {tokens['ops']}",
                                          "Accept": "text/event-stream"}) as resp:
            assert resp.status == 405  # at once: no stream is held open for nothing


async def test_shared_threads_across_two_companies(tmp_path):
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme")
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex")
    try:
        tokens = await open_rollout(acme, globex)
        outsider = await acme.create("person", "pat", "Pat")
        async with mcp(acme, tokens["ops"]) as ops, mcp(globex, tokens["delivery"]) as delivery:
            shared = (await call(ops, "list_threads"))["shared"]
            assert [(t["network"], t["name"]) for t in shared] == [(NETWORK, THREAD)]
            start = await call(delivery, "wait_for_messages", timeout_seconds=0)
            waiting = asyncio.create_task(
                call(delivery, "wait_for_messages", after=start["next_cursor"], timeout_seconds=30))

            posted = await call(ops, "post_message", network=NETWORK, thread=THREAD, body="Ready for Thursday.")
            assert posted["sender"] == f"agent:ops@{ACME}" and posted["status"] == "sequenced"

            async def arrived() -> list:
                page = await call(delivery, "read_thread", network=NETWORK, thread=THREAD)
                return [(m["sender"], m["body"]) for m in page["messages"]]

            assert await eventually(arrived) == [(f"agent:ops@{ACME}", "Ready for Thursday.")]
            seen = await asyncio.wait_for(waiting, 30)
            bodies = [(e["scope"], e["network"], e["body"]) for e in seen["events"] if e["type"] == "message.posted"]
            assert bodies == [("shared", NETWORK, "Ready for Thursday.")]

            reply = await call(delivery, "post_message", network=NETWORK, thread=THREAD, body="Validating retries.",
                               reply_to=posted["id"])
            assert reply["sender"] == f"agent:delivery@{GLOBEX}" and reply["reply_to"] == posted["id"]
            # "Working on it", then the answer; then taken back.
            edited = await call(delivery, "edit_message", network=NETWORK, thread=THREAD, message_id=reply["id"],
                                body="Retries validated: 3 attempts.")
            assert (edited["body"], edited["edited"]) == ("Retries validated: 3 attempts.", True)

            async def shown_at_acme() -> dict | None:
                page = await call(ops, "read_thread", network=NETWORK, thread=THREAD)
                mine = [m for m in page["messages"] if m["id"] == reply["id"] and m["edited"]]
                return mine[0] if mine else None

            shown = await eventually(shown_at_acme)
            assert (shown["body"], shown["reply_to"]) == ("Retries validated: 3 attempts.", posted["id"])
            denied = await refused(ops, "edit_message", network=NETWORK, thread=THREAD, message_id=reply["id"],
                                   body="not mine")
            assert denied["code"] == "forbidden"
            deleted = await call(delivery, "edit_message", network=NETWORK, thread=THREAD, message_id=reply["id"])
            assert (deleted["deleted"], deleted["body"]) == (True, "")
            private = await refused(ops, "post_message", thread="x", body="hi", reply_to=posted["id"])
            assert private["code"] == "invalid_request"
            # A hand-off with structured content, acknowledged without a reply.
            handoff = await call(ops, "post_message", network=NETWORK, thread=THREAD, body="Cutover plan attached.",
                                 data={"ticket": "OPS-7", "window": {"start": 1700000000000, "minutes": 30}})
            assert handoff["data"]["window"]["minutes"] == 30
            bad = await refused(ops, "post_message", network=NETWORK, thread=THREAD, body="x", data={"ratio": 0.5})
            assert bad["code"] == "invalid_request" and "canonical" in bad["message"]
            ack = await call(delivery, "react", network=NETWORK, thread=THREAD, message_id=handoff["id"],
                             reaction="seen")
            assert (ack["message"], ack["participant"], ack["removed"]) == (handoff["id"], f"agent:delivery@{GLOBEX}",
                                                                           False)

            async def acknowledged_at_acme() -> dict | None:
                page = await call(ops, "read_thread", network=NETWORK, thread=THREAD)
                mine = [m for m in page["messages"] if m["id"] == handoff["id"] and m["reactions"]]
                return mine[0] if mine else None

            shown = await eventually(acknowledged_at_acme)
            assert shown["reactions"] == {"seen": [f"agent:delivery@{GLOBEX}"]}
            assert shown["data"] == {"ticket": "OPS-7", "window": {"start": 1700000000000, "minutes": 30}}
        async with mcp(acme, outsider) as pat:
            assert (await call(pat, "list_threads"))["shared"] == []
            assert (await refused(pat, "read_thread", network=NETWORK, thread=THREAD))["code"] == "not_found"
            denied = await refused(pat, "post_message", network=NETWORK, thread=THREAD, body="hi")
            assert denied["code"] == "not_found"
    finally:
        await globex.stop()
        await acme.stop()


async def test_a_remote_host_learns_from_the_401_where_the_resource_metadata_is(acme):
    base = f"http://127.0.0.1:{acme.ports['client']}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) as refused:
            assert refused.status == 401
            challenge = refused.headers["WWW-Authenticate"]
        assert challenge == (f'Bearer realm="agentnet", resource_metadata="{base}/.well-known/'
                             'oauth-protected-resource/mcp"')
        url = challenge.split('resource_metadata="')[1].rstrip('"')
        async with http.get(url) as found:
            metadata = await found.json()
        assert metadata["resource"] == f"{base}/mcp" and metadata["bearer_methods_supported"] == ["header"]
        assert "read" in metadata["scopes_supported"] and metadata["authorization_servers"] == []
        async with http.get(f"{base}/v1/whoami", headers={"Authorization": "Bearer nope"}) as wrong:
            assert wrong.status == 401 and "resource_metadata" in wrong.headers["WWW-Authenticate"]
