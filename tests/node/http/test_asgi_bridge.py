"""The aiohttp→ASGI bridge over a real aiohttp server: scope, request body, streamed response,
errors, disconnects and the background context."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from node.http.asgi_bridge import background_context, call_asgi
from node.http.errors import error_middleware


def _app_for(asgi_app, *, state=None, client_max_size: int = 1024**2) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await call_asgi(asgi_app, request, state=state)

    app = web.Application(middlewares=[error_middleware], client_max_size=client_max_size)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def _read_body(receive) -> tuple[bytes, list[dict]]:
    body, messages = b"", []
    while True:
        message = await receive()
        messages.append(message)
        body += message.get("body", b"")
        if message["type"] != "http.request" or not message["more_body"]:
            return body, messages


async def _send_json(send, status: int, value) -> None:
    payload = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"x-twice", b"a"), (b"x-twice", b"b")]})
    await send({"type": "http.response.body", "body": payload})


async def test_scope_and_plain_response(aiohttp_client):
    async def echo(scope, receive, send):
        body, _ = await _read_body(receive)
        await _send_json(send, 201, {
            "type": scope["type"], "method": scope["method"], "path": scope["path"],
            "raw_path": scope["raw_path"].decode(), "query": scope["query_string"].decode(),
            "scheme": scope["scheme"], "http_version": scope["http_version"],
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "client": scope["client"], "server": scope["server"], "state": scope["state"], "body": body.decode(),
        })

    client = await aiohttp_client(_app_for(echo, state={"agentnet.caller": "agent:ops"}))
    resp = await client.post("/a%2Fb/c?x=1&y=%20", data=b"hello", headers={"X-Custom": "Yes"})
    assert resp.status == 201
    assert resp.headers.getall("X-Twice") == ["a", "b"]
    seen = await resp.json()
    assert (seen["type"], seen["method"], seen["scheme"], seen["http_version"]) == ("http", "POST", "http", "1.1")
    assert seen["path"] == "/a/b/c" and seen["raw_path"] == "/a%2Fb/c" and seen["query"] == "x=1&y=%20"
    assert ["x-custom", "Yes"] in seen["headers"]
    assert all(name == name.lower() for name, _ in seen["headers"])
    assert seen["client"][0] == "127.0.0.1" and seen["server"] == ["127.0.0.1", client.port]
    assert seen["state"] == {"agentnet.caller": "agent:ops"} and seen["body"] == "hello"


async def test_request_body_arrives_in_chunks(aiohttp_client):
    seen: list[dict] = []
    first_in = asyncio.Event()

    async def collect(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            first_in.set()
            if not message.get("more_body"):
                break
        await _send_json(send, 200, {"length": sum(len(m["body"]) for m in seen)})

    async def upload():
        yield b"a" * 1000
        await asyncio.wait_for(first_in.wait(), 10)  # a bridge that buffered the body never gets here
        yield b"b" * 1000

    client = await aiohttp_client(_app_for(collect))
    resp = await client.post("/", data=upload())
    assert (await resp.json()) == {"length": 2000}
    assert all(m["type"] == "http.request" for m in seen) and len(seen) >= 2
    assert seen[0]["body"] == b"a" * 1000 and seen[0]["more_body"] is True
    assert seen[-1]["more_body"] is False
    assert b"".join(m["body"] for m in seen) == b"a" * 1000 + b"b" * 1000


async def test_streamed_response_reaches_the_client_chunk_by_chunk(aiohttp_client):
    got_first = asyncio.Event()

    async def stream(scope, receive, send):
        await _read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        await asyncio.wait_for(got_first.wait(), 10)  # a buffering bridge never gets past here
        await send({"type": "http.response.body", "body": b"data: two\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    client = await aiohttp_client(_app_for(stream))
    resp = await client.get("/events")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    assert await resp.content.readuntil(b"\n\n") == b"data: one\n\n"
    got_first.set()
    assert await resp.content.read() == b"data: two\n\n"


async def test_app_error_before_the_response_is_a_logged_500(aiohttp_client, caplog):
    async def broken(scope, receive, send):
        raise ValueError("secret detail")

    client = await aiohttp_client(_app_for(broken))
    with caplog.at_level(logging.ERROR):
        resp = await client.get("/")
    assert resp.status == 500
    body = await resp.json()
    assert body == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "secret detail" in caplog.text  # in the log, not on the wire


async def test_app_error_mid_response_aborts_the_connection(aiohttp_client, caplog):
    async def broken(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("midway")

    client = await aiohttp_client(_app_for(broken))
    with caplog.at_level(logging.ERROR, logger="node.http.asgi_bridge"):
        resp = await client.get("/")
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()  # a truncated body must not look complete
    assert "midway" in caplog.text


async def test_app_that_sends_nothing_is_a_500(aiohttp_client):
    async def silent(scope, receive, send):
        return None

    client = await aiohttp_client(_app_for(silent))
    assert (await client.get("/")).status == 500


async def test_body_over_the_listener_limit_is_413(aiohttp_client):
    async def collect(scope, receive, send):
        body, _ = await _read_body(receive)
        await _send_json(send, 200, {"length": len(body)})

    client = await aiohttp_client(_app_for(collect, client_max_size=100))
    ok = await client.post("/", data=b"x" * 100)
    assert ok.status == 200

    async def chunked():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(3):
            yield b"x" * 60

    too_big = await client.post("/", data=chunked())
    assert too_big.status == 413
    assert (await too_big.json())["error"]["code"] == "payload_too_large"


async def test_client_going_away_is_an_http_disconnect():
    # aiohttp's test server cancels handlers when the client leaves; a node's runner does not
    # (the default), so this serves the app as the node does.
    after_body: list[dict] = []
    waiting = asyncio.Event()
    done = asyncio.Event()

    async def long_poll(scope, receive, send):
        await _read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        waiting.set()
        after_body.append(await receive())  # blocks until the client leaves
        done.set()

    runner = web.AppRunner(_app_for(long_poll))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            resp = await session.get(f"http://127.0.0.1:{port}/")
            await asyncio.wait_for(waiting.wait(), 10)
            resp.close()  # drop the connection without reading the body
            await asyncio.wait_for(done.wait(), 10)
    finally:
        await runner.cleanup()
    assert after_body == [{"type": "http.disconnect"}]


async def test_receive_after_the_response_completed_is_a_disconnect(aiohttp_client):
    after: list[dict] = []
    done = asyncio.Event()

    async def app(scope, receive, send):
        await _read_body(receive)
        await _send_json(send, 200, {})
        after.append(await asyncio.wait_for(receive(), 5))
        done.set()

    client = await aiohttp_client(_app_for(app))
    assert (await client.get("/")).status == 200
    await asyncio.wait_for(done.wait(), 5)
    assert after == [{"type": "http.disconnect"}]


async def test_background_context_is_entered_and_left_by_one_task(aiohttp_server):
    tasks: list[asyncio.Task] = []

    @asynccontextmanager
    async def resource():
        tasks.append(asyncio.current_task())
        yield
        tasks.append(asyncio.current_task())

    app = web.Application()
    app.cleanup_ctx.append(background_context(resource))
    server = await aiohttp_server(app)
    assert len(tasks) == 1
    await server.close()
    assert len(tasks) == 2 and tasks[0] is tasks[1]


async def test_background_context_failure_fails_startup(aiohttp_server):
    @asynccontextmanager
    async def broken():
        raise OSError("cannot start")
        yield

    app = web.Application()
    app.cleanup_ctx.append(background_context(broken))
    with pytest.raises(OSError, match="cannot start"):
        await aiohttp_server(app)
