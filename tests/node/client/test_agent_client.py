"""The agent client against a real node (real sockets, the node's real client listener):
typed reads and posts, knowledge search, the event feed, a post retried after its answer was
lost stored once, 429 waited out, errors mapped to one type, and a stream that resumes across
a node restart with no gap and no duplicate. The SSE parser is tested without sockets."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from node.client.agent_client import AgentClient, AgentNetError, RetryPolicy, SseFrame, SseParser
from node.client.models import (
    EventOut,
    KnowledgeResults,
    MessageOut,
    MessagePage,
    PrincipalOut,
    SharedMessageOut,
    SharedMessagePage,
)
from tests.cluster import ClusterNode, eventually, start_node
from tests.tls_fixtures import TestCertificateAuthority

ACME = "acme.example"
FAST = RetryPolicy(attempts=4, base_delay_s=0.05, max_delay_s=0.3)


@pytest.fixture
async def acme(tmp_path):
    node = await start_node(tmp_path, ACME, TestCertificateAuthority(), display_name="Acme")
    yield node
    await node.stop()


def url(node: ClusterNode) -> str:
    return f"http://127.0.0.1:{node.ports['client']}"


async def company(node: ClusterNode) -> dict[str, str]:
    """An agent and a person, a private thread for both, knowledge, and a one-company network
    with a shared thread (the host alone is enough to exercise the shared-thread routes)."""
    tokens = {"ops": await node.create("agent", "ops", "Customer Ops Agent"),
              "alex": await node.create("person", "alex", "Alex Rivera")}
    await node.admin("POST", "/v1/threads", {"name": "billing", "title": "Billing",
                                             "members": ["agent:ops", "person:alex"]})
    await node.admin("POST", "/v1/knowledge", {"title": "Launch checklist",
                                               "body": "- [ ] webhook validation", "readers": ["agent:ops"]})
    await node.admin("POST", "/v1/networks", {"name": "rollout", "title": "Rollout"}, expect=201)
    for ref in ("agent:ops", "person:alex"):
        await node.admin("POST", "/v1/networks/rollout/participants", {"participant": ref})
    await node.admin("POST", "/v1/networks/rollout/threads", {
        "name": "status", "title": "Status", "participants": [f"agent:ops@{ACME}", f"person:alex@{ACME}"],
    }, expect=201)
    return tokens


async def test_sse_parser_follows_the_field_rules_across_chunk_boundaries():
    parser = SseParser()
    wire = (b'retry: 2000\nid: 7\nevent: ready\ndata: {"cursor": "7"}\n\n: keepalive\n\n'
            b'id: 8\r\nevent: message.posted\r\ndata: a\r\ndata:b\r\n\r\nevent: error\ndata: x\n\n')
    frames = [f for i in range(len(wire)) for f in parser.feed(wire[i:i + 1])]
    assert frames == [SseFrame("ready", '{"cursor": "7"}', "7"), SseFrame("message.posted", "a\nb", "8"),
                      SseFrame("error", "x", "8")]  # the id sticks until a frame sets another


async def test_whoami_threads_post_read_and_search_are_typed(acme):
    tokens = await company(acme)
    async with AgentClient(url(acme), tokens["ops"]) as client:
        me = await client.whoami()
        assert isinstance(me, PrincipalOut) and me.id == f"agent:ops@{ACME}"
        assert [t.name for t in (await client.threads()).items] == ["billing"]
        posted = await client.post("billing", "Looking into it.")
        assert isinstance(posted, MessageOut) and posted.sender == me.id
        page = await client.read("billing")
        assert isinstance(page, MessagePage) and [m.body for m in page.messages] == ["Looking into it."]
        found = await client.search_knowledge("webhook validation")
        assert isinstance(found, KnowledgeResults) and [k.title for k in found.items] == ["Launch checklist"]

        assert [(t.network, t.name) for t in (await client.shared_threads()).items] == [("rollout", "status")]
        shared = await client.post("status", "Ready for Thursday.", network="rollout")
        assert isinstance(shared, SharedMessageOut) and shared.status in ("pending", "sequenced")
        at_host = await client.read("status", network="rollout")
        assert isinstance(at_host, SharedMessagePage)
        assert [(m.id, m.body) for m in at_host.messages] == [(shared.id, "Ready for Thursday.")]

        answer = await client.reply("rollout", "status", shared.id, "working on it")
        assert answer.reply_to == shared.id
        edited = await client.edit("rollout", "status", answer.id, "Checklist done.")
        assert (edited.body, edited.edited) == ("Checklist done.", True)
        gone = await client.delete("rollout", "status", shared.id)
        assert gone.deleted
        shown = {m.id: m for m in (await client.read("status", network="rollout")).messages}
        assert (shown[shared.id].deleted, shown[shared.id].body) == (True, "")
        assert (shown[answer.id].body, shown[answer.id].reply_to) == ("Checklist done.", shared.id)

        upload = await client.upload("checklist.csv", b"step,done\ndrain,yes\n", "text/csv")
        assert (upload.size, upload.content_type) == (20, "text/csv")
        handoff = await client.post("status", "Checklist attached.", network="rollout", attachments=[upload.id],
                                    data={"ticket": "OPS-7"})
        assert [a.name for a in handoff.attachments] == ["checklist.csv"] and handoff.data == {"ticket": "OPS-7"}
        assert await client.download("rollout", "status", handoff.id) == b"step,done\ndrain,yes\n"
        seen = await client.react("rollout", "status", handoff.id, "seen")
        assert (seen.message, seen.removed) == (handoff.id, False)
        shown = {m.id: m for m in (await client.read("status", network="rollout")).messages}
        assert shown[handoff.id].reactions == {"seen": [me.id]}
        await client.react("rollout", "status", handoff.id, "seen", removed=True)
        shown = {m.id: m for m in (await client.read("status", network="rollout")).messages}
        assert shown[handoff.id].reactions == {}
        with pytest.raises(AgentNetError) as refused:
            await client.download("rollout", "status", handoff.id, 1)
        assert (refused.value.status, refused.value.code) == (404, "not_found")
        with pytest.raises(AgentNetError) as refused:
            await client.upload("../x", b"x")
        assert refused.value.code == "invalid_request"


async def test_events_long_poll_from_a_cursor(acme):
    tokens = await company(acme)
    async with AgentClient(url(acme), tokens["ops"]) as ops, AgentClient(url(acme), tokens["alex"]) as alex:
        start = await ops.events()
        assert start.events == []
        waiting = asyncio.create_task(ops.events(start.next_cursor, wait=10))
        await asyncio.sleep(0.1)
        await alex.post("billing", "anyone?")
        page = await waiting
        assert [(e.type, e.scope, e.thread, e.body) for e in page.events] == [
            ("message.posted", "private", "billing", "anyone?")]
        assert int(page.next_cursor) >= int(page.events[-1].cursor)


async def test_the_same_idempotency_key_twice_stores_one_message(acme):
    tokens = await company(acme)
    async with AgentClient(url(acme), tokens["ops"]) as client:
        first = await client.post("billing", "once", idempotency_key="reply-to-42")
        again = await client.post("billing", "once", idempotency_key="reply-to-42")
        assert again == first
        shared = [await client.post("status", "once", network="rollout", idempotency_key="k") for _ in range(2)]
        assert shared[0].id == shared[1].id
        assert [m.body for m in (await client.read("billing")).messages] == ["once"]
        assert [m.body for m in (await client.read("status", network="rollout")).messages] == ["once"]


async def lossy_proxy(target: str, aiohttp_server, *, drop_first: int):
    """Forwards to the node, but for the first `drop_first` posts cuts the connection after
    the node has answered: the post is stored, its answer never arrives."""
    seen: list[str | None] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with aiohttp.ClientSession() as session, session.request(
                request.method, target + request.path_qs, headers=headers, data=await request.read()) as resp:
            body = await resp.read()
            replay = resp.headers.get("Idempotent-Replayed")
        if request.method == "POST":
            seen.append(request.headers.get("Idempotency-Key"))
            if len(seen) <= drop_first:
                request.transport.abort()  # the client sees the connection die
                return web.Response(status=204)
        out = web.Response(body=body, status=resp.status, content_type="application/json")
        if replay:
            out.headers["Idempotent-Replayed"] = replay
        return out

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return await aiohttp_server(app), seen


async def test_a_post_whose_answer_was_lost_is_retried_with_its_key_and_stored_once(acme, aiohttp_server):
    tokens = await company(acme)
    proxy, seen = await lossy_proxy(url(acme), aiohttp_server, drop_first=2)
    async with AgentClient(str(proxy.make_url("")), tokens["ops"], retry=FAST) as client:
        posted = await client.post("status", "exactly once", network="rollout")
    assert len(seen) == 3 and len(set(seen)) == 1 and seen[0]  # one generated key, reused
    async with AgentClient(url(acme), tokens["ops"]) as direct:
        messages = (await direct.read("status", network="rollout")).messages
    assert [(m.id, m.body) for m in messages] == [(posted.id, "exactly once")]


async def test_retries_are_bounded(acme, aiohttp_server):
    tokens = await company(acme)
    proxy, seen = await lossy_proxy(url(acme), aiohttp_server, drop_first=10)
    async with AgentClient(str(proxy.make_url("")), tokens["ops"], retry=FAST) as client:
        with pytest.raises(AgentNetError) as caught:
            await client.post("billing", "lost")
    assert (caught.value.status, caught.value.code) == (0, "connection_failed")
    assert len(seen) == FAST.attempts


async def test_posting_too_fast_waits_out_retry_after(acme):
    tokens = await company(acme)
    async with AgentClient(url(acme), tokens["ops"], retry=RetryPolicy(attempts=1)) as impatient, \
            AgentClient(url(acme), tokens["ops"]) as patient:
        with pytest.raises(AgentNetError) as caught:
            for i in range(40):  # the node's default burst is 30
                await impatient.post("billing", f"m{i}")
        assert (caught.value.status, caught.value.code) == (429, "too_many_requests")
        assert caught.value.retry_after is not None and caught.value.retry_after >= 1
        sent = len((await patient.read("billing", limit=200)).messages)
        await patient.post("billing", "after the wait")
        messages = (await patient.read("billing", limit=200)).messages
        assert len(messages) == sent + 1 and messages[-1].body == "after the wait"


async def test_errors_carry_status_and_code(acme):
    tokens = await company(acme)
    read_only = (await acme.admin("POST", "/v1/agents/ops/tokens", {"scopes": ["read"]}))["token"]
    cases = []
    async with AgentClient(url(acme), tokens["ops"]) as ops, AgentClient(url(acme), read_only) as reader, \
            AgentClient(url(acme), "anagt_not-a-token") as stranger:
        for call in (lambda: ops.read("no-such-thread"), lambda: reader.post("billing", "hi"),
                     lambda: reader.search_knowledge("webhook"), lambda: stranger.whoami(),
                     lambda: ops.post("billing", "x" * 20_000), lambda: ops.events("999999999")):
            with pytest.raises(AgentNetError) as caught:
                await call()
            cases.append((caught.value.status, caught.value.code))
        for stream in (stranger.stream(), ops.stream("999999999")):  # refused before it starts: not retried
            with pytest.raises(AgentNetError) as caught:
                await anext(stream)
            cases.append((caught.value.status, caught.value.code))
    assert cases == [(404, "not_found"), (403, "insufficient_scope"), (403, "insufficient_scope"),
                     (401, "unauthorized"), (413, "message_too_large"), (410, "cursor_unknown"),
                     (401, "unauthorized"), (410, "cursor_unknown")]


async def test_stream_resumes_across_a_node_restart_with_no_gap_and_no_duplicate(acme):
    tokens = await company(acme)
    received: asyncio.Queue[EventOut] = asyncio.Queue()
    async with AgentClient(url(acme), tokens["ops"], retry=FAST) as ops, \
            AgentClient(url(acme), tokens["alex"]) as alex:
        start = (await ops.events()).next_cursor
        stream = ops.stream(start)

        async def consume() -> None:
            async for event in stream:
                await received.put(event)

        async def take(n: int) -> list[str]:
            async with asyncio.timeout(15):
                return [(await received.get()).body for _ in range(n)]

        consumer = asyncio.create_task(consume())
        try:
            for i in range(3):
                await alex.post("billing", f"m{i}")
            assert await take(3) == ["m0", "m1", "m2"]
            assert stream.cursor is not None and int(stream.cursor) > int(start)
            await acme.stop()
            await asyncio.sleep(0.3)  # the stream is down and its reconnects are refused
            await acme.start()
            for i in range(3, 6):
                await alex.post("billing", f"m{i}")
            assert await take(3) == ["m3", "m4", "m5"]
            assert stream.reconnects >= 1
            await asyncio.sleep(0.3)
            assert received.empty()  # nothing came twice
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await stream.aclose()


async def test_a_revoked_token_ends_the_stream_with_an_error_not_a_reconnect(acme):
    tokens = await company(acme)
    async with AgentClient(url(acme), tokens["ops"], retry=FAST) as ops:
        async with ops.stream() as stream:
            first = asyncio.create_task(anext(stream))
            await eventually(lambda: _ready(stream))
            await acme.admin("POST", "/v1/agents/ops/token")  # rotation revokes the old token
            with pytest.raises(AgentNetError) as caught:
                await asyncio.wait_for(first, 10)
            assert (caught.value.status, caught.value.code) == (401, "token_revoked")
            assert stream.reconnects == 0


async def _ready(stream) -> bool:
    return stream.cursor is not None


async def test_webhooks_are_created_listed_and_deleted(acme):
    tokens = await company(acme)
    async with AgentClient(url(acme), tokens["ops"]) as client:
        made = await client.create_webhook("https://hooks.acme.example/agentnet")
        assert made.secret.startswith("whsec_") and made.status == "active"
        assert [w.id for w in (await client.webhooks()).items] == [made.id]
        assert (await client.delete_webhook(made.id)).id == made.id
        assert (await client.webhooks()).items == []
        with pytest.raises(AgentNetError) as caught:
            await client.create_webhook("ftp://nowhere")
        assert (caught.value.status, caught.value.code) == (422, "invalid_request")
