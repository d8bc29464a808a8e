"""Serve an ASGI application from inside an aiohttp handler.

The MCP SDK speaks ASGI; the node speaks aiohttp, whose middlewares already authenticate the
caller and render errors. Rather than run a second server, a handler hands the request to the
ASGI app here: the body goes in as `http.request` chunks, the app's `http.response.*` messages
come out as a `web.StreamResponse` written chunk by chunk, so an SSE stream reaches the client
event by event (a generic adapter that buffers the response hangs such streams).

- The verified identity travels in `scope["state"]`, which Starlette exposes as
  `request.state`; nothing in the ASGI app parses credentials again.
- An app that fails before it started its response re-raises, so the listener's one error
  renderer answers (a logged 500); after the headers went out the connection is aborted, since
  a half-sent body must not look complete.
- aiohttp does not cancel a handler when its client goes away, so `receive()` notices by
  watching the transport and then answers `http.disconnect`, as ASGI servers do.
- The request body is held to the listener's `client_max_size` (a 413), as `request.read()`
  would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

__all__ = ["ASGIApp", "HeldContext", "background_context", "call_asgi"]

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

# How often a request whose body has been read checks whether its client is still there; a
# long-poll notices a client that left within this many seconds.
_DISCONNECT_POLL_S = 0.5


def _address(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if isinstance(value, tuple) and len(value) >= 2 else None


def _scope(request: web.Request, state: Mapping[str, Any]) -> dict[str, Any]:
    transport = request.transport
    raw_path, _, _ = request.raw_path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": raw_path.encode("latin-1"),
        "root_path": "",
        "query_string": request.rel_url.raw_query_string.encode("latin-1"),
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": _address(transport.get_extra_info("peername")) if transport else None,
        "server": _address(transport.get_extra_info("sockname")) if transport else None,
        "state": dict(state),
    }


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class _Exchange:
    """One request's ASGI channel: `receive` feeds the body, `send` writes the response."""

    def __init__(self, request: web.Request, body: bytes | None = None) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self.complete = asyncio.Event()
        self.disconnected = False
        self._body_done = False
        self._received = 0
        self._body = body

    async def receive(self) -> Message:
        if self._body is not None and not self._body_done:  # the handler read it already, whole
            self._body_done = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        if not self._body_done:
            try:
                chunk = await self.request.content.readany()
            except ConnectionError:  # the client left while sending the body
                self._body_done = self.disconnected = True
                return {"type": "http.disconnect"}
            self._received += len(chunk)
            if self._received > self.request.client_max_size:
                raise web.HTTPRequestEntityTooLarge(max_size=self.request.client_max_size,
                                                    actual_size=self._received)
            self._body_done = self.request.content.at_eof()
            return {"type": "http.request", "body": chunk, "more_body": not self._body_done}
        while not (self.disconnected or self.complete.is_set()):
            try:
                await asyncio.wait_for(self.complete.wait(), _DISCONNECT_POLL_S)
            except TimeoutError:
                self.disconnected = _client_gone(self.request)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.complete.is_set():
            raise RuntimeError(f"ASGI message {message['type']!r} after the response was complete")
        if message["type"] == "http.response.start":
            if self.response is not None:
                raise RuntimeError("ASGI app started its response twice")
            headers: CIMultiDict[str] = CIMultiDict()
            for name, value in message.get("headers", ()):
                headers.add(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
            self.response = web.StreamResponse(status=message["status"], headers=headers)
            await self._io(self.response.prepare(self.request))
        elif message["type"] == "http.response.body":
            if self.response is None:
                raise RuntimeError("ASGI app sent a body before starting its response")
            body = message.get("body", b"")
            if body:
                await self._io(self.response.write(body))
            if not message.get("more_body", False):
                try:
                    await self._io(self.response.write_eof())
                except ConnectionError:
                    # The client had the whole body and closed before the last chunk (LangChain's
                    # MCP adapter does, each call): nothing is lost, so nothing is reported.
                    pass
                self.complete.set()

    async def _io(self, write: Awaitable[Any]) -> None:
        try:
            await write
        except ConnectionError:  # the client left; the app sees an OSError, as ASGI asks
            self.disconnected = True
            raise


async def call_asgi(app: ASGIApp, request: web.Request, *, state: Mapping[str, Any] | None = None,
                    body: bytes | None = None) -> web.StreamResponse:
    """Run `app` for this request and return the response it streamed; `state` becomes
    `scope["state"]` (for Starlette apps, `request.state`). `body`: the request's body, when
    the handler has read it already (to check it first)."""
    exchange = _Exchange(request, body)
    try:
        await app(_scope(request, state or {}), exchange.receive, exchange.send)
    except Exception:
        if exchange.response is None:
            raise  # nothing sent yet: the listener's error renderer answers
        if not exchange.disconnected:
            log.exception("ASGI app failed after starting its response to %s %s", request.method, request.path)
        if not exchange.complete.is_set():
            _abort(request)
        return exchange.response
    if exchange.response is None:
        raise RuntimeError("ASGI app returned without sending a response")
    if not exchange.complete.is_set():
        if not exchange.disconnected:
            log.error("ASGI app returned before completing its response to %s %s", request.method, request.path)
        _abort(request)
    return exchange.response


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


class HeldContext:
    """Keeps `make()` entered by a task of its own, from `enter()` until `exit()`.

    aiohttp runs startup and cleanup in different tasks (and a lazily started context is
    entered by whichever request came first), but an anyio task group such as the MCP session
    manager's `run()` must be left by the task that entered it.
    """

    def __init__(self, make: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._make = make
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def enter(self) -> None:
        """Returns once the context is entered; raises what failed the entry."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def run() -> None:
            async with self._make():
                ready.set_result(None)
                await self._stop.wait()

        task = self._task = asyncio.create_task(run())
        try:
            await asyncio.wait((ready, task), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        if not ready.done():
            await task  # raises what failed the entry
            raise RuntimeError("the background context ended while being entered")

    async def exit(self) -> None:
        if self._task is not None:
            self._stop.set()
            await self._task


def background_context(
    make: Callable[[], AbstractAsyncContextManager[Any]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A `cleanup_ctx` entry that keeps `make()` entered for the application's lifetime
    (`HeldContext`). A failure while entering fails the startup."""

    async def hold(_app: web.Application) -> AsyncIterator[None]:
        held = HeldContext(make)
        await held.enter()
        try:
            yield
        finally:
            await held.exit()

    return hold
