"""The live event stream (Server-Sent Events): resume by Last-Event-ID with no gap and no
duplicate (after a dropped connection and after a node restart), revocation and expiry
ending open streams, a client that does not read being dropped without slowing others, and
a federated message reaching an agent's stream on the other node."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator

import aiohttp

from tests.cluster import eventually
from tests.node.conftest import bearer
from tests.node.networks.test_seed_scenario import GLOBEX, NETWORK, THREAD, acme_and_globex, open_rollout  # noqa: F401


async def frames(resp: aiohttp.ClientResponse) -> AsyncIterator[dict]:
    """Parse SSE frames (the spec's field rules, enough for this server): id, event, data."""
    frame: dict = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            frame.setdefault("comments", []).append(line[1:].strip())
        else:
            field, _, value = line.partition(":")
            frame[field] = value[1:] if value.startswith(" ") else value


async def collect(resp: aiohttp.ClientResponse, count: int, *, timeout: float = 10.0) -> list[dict]:
    """The next `count` event frames (not ready, not comments)."""
    got: list[dict] = []
    async with asyncio.timeout(timeout):
        async for frame in frames(resp):
            if frame.get("event") not in (None, "ready") and "data" in frame:
                got.append(frame)
                if len(got) == count:
                    return got
    return got


async def _setup(node):
    tokens = {"alex": await node.create("person", "alex"), "ops": await node.create("agent", "ops")}
    resp = await node.admin.post("/v1/threads", json={"name": "billing", "title": "Billing",
                                                      "members": ["person:alex", "agent:ops"]}, headers=node.as_admin())
    assert resp.status == 201
    return tokens


async def _post(node, token, body):
    resp = await node.client.post("/v1/threads/billing/messages", json={"body": body}, headers=bearer(token))
    assert resp.status == 201, await resp.text()


async def test_stream_starts_with_ready_then_carries_events_with_cursors(node):
    tokens = await _setup(node)
    resp = await node.client.get("/v1/events/stream", headers=bearer(tokens["ops"]))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    ready = await anext(frames(resp))
    assert ready["event"] == "ready" and json.loads(ready["data"])["cursor"] == ready["id"]
    await _post(node, tokens["alex"], "one")
    await _post(node, tokens["alex"], "two")
    got = await collect(resp, 2)
    assert [json.loads(f["data"])["body"] for f in got] == ["one", "two"]
    assert [f["event"] for f in got] == ["message.posted"] * 2
    assert int(got[0]["id"]) > int(ready["id"]) and int(got[1]["id"]) > int(got[0]["id"])
    resp.close()


async def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(node):
    tokens = await _setup(node)
    resp = await node.client.get("/v1/events/stream", headers=bearer(tokens["ops"]))
    for i in range(3):
        await _post(node, tokens["alex"], f"m{i}")
    first = await collect(resp, 2)
    resp.close()  # the connection drops after two of three
    for i in range(3, 6):
        await _post(node, tokens["alex"], f"m{i}")
    again = await node.client.get("/v1/events/stream", headers={**bearer(tokens["ops"]),
                                                                 "Last-Event-ID": first[-1]["id"]})
    rest = await collect(again, 4)
    bodies = [json.loads(f["data"])["body"] for f in first + rest]
    assert bodies == [f"m{i}" for i in range(6)]
    again.close()


async def test_heartbeat_comments_keep_an_idle_stream_alive(node):
    tokens = await _setup(node)
    resp = await node.client.get("/v1/events/stream", headers=bearer(tokens["ops"]))
    async with asyncio.timeout(5):
        async for frame in frames(resp):
            if "keepalive" in frame.get("comments", []):
                break
    resp.close()


async def test_revoking_the_token_ends_an_open_stream(node):
    tokens = await _setup(node)
    extra = await (await node.admin.post("/v1/agents/ops/tokens", json={"scopes": ["read"]},
                                         headers=node.as_admin())).json()
    resp = await node.client.get("/v1/events/stream", headers=bearer(extra["token"]))
    other = await node.client.get("/v1/events/stream", headers=bearer(tokens["ops"]))
    await anext(frames(resp))
    revoked = await node.admin.post(f"/v1/agents/ops/tokens/{extra['id']}/revoke", headers=node.as_admin())
    assert revoked.status == 200
    last = None
    async with asyncio.timeout(5):
        async for frame in frames(resp):
            last = frame
    assert last is not None and last["event"] == "error" and json.loads(last["data"])["code"] == "token_revoked"
    # The same agent's other token keeps its stream.
    await _post(node, tokens["alex"], "still here")
    assert [json.loads(f["data"])["body"] for f in await collect(other, 1)] == ["still here"]
    other.close()


async def test_disabling_the_principal_and_expiry_end_streams(node):
    tokens = await _setup(node)
    short = await (await node.admin.post("/v1/people/alex/tokens", json={"expires_in_seconds": 60},
                                         headers=node.as_admin())).json()
    expiring = await node.client.get("/v1/events/stream", headers=bearer(short["token"]))
    disabled = await node.client.get("/v1/events/stream", headers=bearer(tokens["ops"]))
    await node.admin.post("/v1/agents/ops/disable", headers=node.as_admin())
    node.clock.now += 61_000  # the node's clock passes the expiry; the periodic re-check sees it
    for resp in (expiring, disabled):
        async with asyncio.timeout(5):
            ended = [f async for f in frames(resp)]
        assert ended[-1]["event"] == "error"


async def test_a_client_that_does_not_read_is_dropped_without_slowing_others(node, caplog):
    caplog.set_level(logging.INFO, logger="node.feed.api")
    tokens = await _setup(node)
    host, port = node.client.server.host, node.client.server.port
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, port))
    slow.sendall(f"GET /v1/events/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {tokens['ops']}\r\n\r\n"
                 .encode())
    fast = await node.client.get("/v1/events/stream", headers=bearer(tokens["alex"]))
    body = "x" * 16_000
    count = 400  # ~6.5 MB: more than the socket buffers hold, so the slow client's writes stall
    reader = asyncio.create_task(collect(fast, count, timeout=60))
    for i in range(count):
        await _post(node, tokens["alex"], f"{i} {body}")
    got = await reader
    assert [int(json.loads(f["data"])["body"].split()[0]) for f in got] == list(range(count))
    fast.close()
    # The socket buffers on the way hold a few MB; on a machine whose buffers took all of it, a
    # few hundred more posts fill them (the node drops the slow client once a write waits 1 s).
    for extra in range(3):
        if any("dropped a stream client" in r.getMessage() for r in caplog.records):
            break
        for i in range(count):
            await _post(node, tokens["alex"], f"more {extra} {i} {body}")
        await asyncio.sleep(2)

    def drained_until_closed() -> bool:
        slow.settimeout(10)
        deadline = time.monotonic() + 60  # what is left in the buffers drains in well under this
        try:
            while slow.recv(65536):
                if time.monotonic() > deadline:
                    return False  # still open, still being fed (heartbeats): never dropped
            return True  # EOF: the node closed it
        except ConnectionResetError:
            return True  # the node aborted it
        except TimeoutError:
            return False  # still open, still being fed

    assert await asyncio.to_thread(drained_until_closed)
    slow.close()


async def test_bad_last_event_id_is_422_and_missing_token_401(node):
    tokens = await _setup(node)
    for bad in ("x1", "\u00b2"):  # "²" passes str.isdigit()
        resp = await node.client.get("/v1/events/stream", headers={**bearer(tokens["ops"]), "Last-Event-ID": bad})
        assert resp.status == 422
    # The header wins over `after`, but a malformed `after` is still refused (once a 410 for the header's cursor).
    resp = await node.client.get("/v1/events/stream?after=", headers={**bearer(tokens["ops"]), "Last-Event-ID": "1"})
    assert resp.status == 422 and (await resp.json())["error"]["fields"][0]["field"] == "after"
    assert (await node.client.get("/v1/events/stream")).status == 401


async def test_federated_message_reaches_a_stream_on_the_other_node_across_a_restart(acme_and_globex):  # noqa: F811
    acme, globex = acme_and_globex
    tokens = await open_rollout(acme, globex)
    url = f"http://127.0.0.1:{globex.ports['client']}/v1/events/stream"
    headers = bearer(tokens["delivery"])
    messages = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
    async with aiohttp.ClientSession() as http:
        resp = await http.get(url, headers=headers)
        await acme.client(tokens["alex"], "POST", messages, {"body": "from acme 0"})
        (first,) = await collect(resp, 1)
        event = json.loads(first["data"])
        assert (event["scope"], event["network"], event["thread"], event["body"]) == \
               ("shared", NETWORK, THREAD, "from acme 0")
        assert event["sender"] == "person:alex@acme.example" and event["seq"] is not None
        await globex.stop()
        resp.close()
        for i in (1, 2):  # posted while Globex is down: delivered when it is back
            await acme.client(tokens["alex"], "POST", messages, {"body": f"from acme {i}"})
        await globex.start()
        await globex.client(tokens["sam"], "POST", messages, {"body": "from globex 3"})
        resumed = await http.get(url, headers={**headers, "Last-Event-ID": first["id"]})
        rest = await collect(resumed, 3, timeout=30)
        assert [json.loads(f["data"])["body"] for f in rest] == ["from acme 1", "from acme 2", "from globex 3"], \
            [(f["id"], json.loads(f["data"])["body"]) for f in rest]
        ids = [first["id"]] + [f["id"] for f in rest]
        assert len(set(ids)) == 4 and ids == sorted(ids, key=int)
        resumed.close()

    async def acme_has_all():
        page = await acme.client(tokens["ops"], "GET", messages)
        return len(page["messages"]) == 4

    await eventually(acme_has_all)
    assert GLOBEX in (await acme.admin("GET", f"/v1/networks/{NETWORK}"))["members"]
