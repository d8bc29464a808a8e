"""Client routes for the event feed: "events since" (with an optional long poll) and a live
Server-Sent Events stream.

The stream is the same read as "events since", repeated: each frame's `id:` is its feed
cursor, so a client that reconnects with `Last-Event-ID` gets exactly what it missed, across
a node restart too (the feed is in the database). A `ready` frame carries the starting cursor
so a client that saw no event yet can still resume from the right place.

A stream ends when its token stops working (revoked, expired, principal disabled): the node
re-checks the token whenever tokens change in this process and every `token_recheck_s`
otherwise, sends an `error` frame and closes. A client that does not read is dropped after
`stream_write_timeout_s`; each stream has its own task and its own reads, so it slows no other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

from aiohttp import web

from node.basics.clock import Clock
from node.basics.errors import InvalidRequest
from node.basics.limits import ClientLimits
from node.feed.filters import FeedFilter
from node.feed.models import EventPage, EventsQuery, StreamQuery
from node.feed.service import FeedService
from node.http.auth import Caller, authenticate_digest, current_caller
from node.http.io import read_query, respond
from node.http.openapi import Endpoint, Header
from storage.storage import Storage

__all__ = ["feed_endpoints"]

log = logging.getLogger(__name__)

_PAGE = 200
_MAX_CURSOR_CHARS = 18
LAST_EVENT_ID = Header("Last-Event-ID", "the `id:` of the last frame received: the stream resumes after it",
                       rf"^[0-9]{{1,{_MAX_CURSOR_CHARS}}}$")
_CURSOR = re.compile(LAST_EVENT_ID.pattern)


def feed_endpoints(feed: FeedService, storage: Storage, clock: Clock, limits: ClientLimits) -> list[Endpoint]:
    async def events(request: web.Request) -> web.Response:
        caller = current_caller(request)  # its "read" scope was checked before the handler ran
        query = read_query(request, EventsQuery)
        page = await feed.wait(caller.principal, query.after, limit=query.limit, timeout_s=query.wait,
                               only=FeedFilter.from_query(query))
        return respond(page)

    async def stream(request: web.Request) -> web.StreamResponse:
        caller = current_caller(request)  # its "read" scope was checked before the handler ran
        after = _resume_cursor(request)
        only = FeedFilter.from_query(read_query(request, StreamQuery))
        waiter = feed.hub.waiter()  # taken before each read: a commit during the read still wakes the stream
        page = await feed.read(caller.principal, after, limit=_PAGE, only=only)  # a bad cursor: 410
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        writer = _FrameWriter(request, response, limits.stream_write_timeout_s)
        ready = after if page.items else page.next_cursor  # events come only after a given cursor
        if not await writer.send(f"retry: 2000\nid: {ready}\nevent: ready\ndata: {json.dumps({'cursor': ready})}\n\n"):
            return response
        await _follow(feed, storage, clock, limits, caller, page, waiter, writer, only=only)
        return response

    return [
        Endpoint("GET", "/v1/events", events,
                 "Events the caller can see after a cursor; `wait` long-polls. 410 if the cursor is too old",
                 query=EventsQuery, response=EventPage, scope="read", errors=(410,)),
        Endpoint("GET", "/v1/events/stream", stream,
                 "Live events as Server-Sent Events; resume with Last-Event-ID. 410 if the cursor is too old",
                 query=StreamQuery, scope="read", headers=(LAST_EVENT_ID,), media_type="text/event-stream",
                 errors=(410,)),
    ]


def _resume_cursor(request: web.Request) -> str | None:
    query = read_query(request, StreamQuery)  # checked even when the header wins: a bad query is refused
    header = request.headers.get("Last-Event-ID")
    if header is not None:
        if not _CURSOR.fullmatch(header):  # ASCII digits: str.isdigit() takes "²"
            raise InvalidRequest("Last-Event-ID must be a cursor this node issued",
                                 [{"field": "Last-Event-ID", "location": "header", "message": "a cursor"}])
        return header
    return query.after


async def _follow(feed: FeedService, storage: Storage, clock: Clock, limits: ClientLimits, caller: Caller,
                  page: EventPage, waiter: asyncio.Event, writer: _FrameWriter, *, only: FeedFilter) -> None:
    hub = feed.hub
    tokens_seen = hub.tokens_version
    checked_at = last_write = time.monotonic()
    while True:
        for event in page.items:
            frame = f"id: {event.cursor}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"
            if not await writer.send(frame):
                return
            last_write = time.monotonic()
        cursor = page.next_cursor
        if len(page.items) < _PAGE:
            now = time.monotonic()
            wait = min(limits.feed_poll_s, limits.token_recheck_s - (now - checked_at),
                       limits.stream_heartbeat_s - (now - last_write))
            await hub.wait(waiter, wait)
        if hub.closed or writer.gone:
            return
        now = time.monotonic()
        if hub.tokens_version != tokens_seen or now - checked_at >= limits.token_recheck_s:
            tokens_seen, checked_at = hub.tokens_version, now
            if await authenticate_digest(storage, clock, caller.token_hash) is None:
                await writer.send('event: error\ndata: {"code": "token_revoked", '
                                  '"message": "the token was revoked or expired, or its owner disabled"}\n\n')
                return
        if now - last_write >= limits.stream_heartbeat_s:
            if not await writer.send(": keepalive\n\n"):
                return
            last_write = now
        waiter = hub.waiter()
        page = await feed.read(caller.principal, cursor, limit=_PAGE, only=only)


class _FrameWriter:
    """Writes frames; drops the connection of a client that stops reading or went away."""

    def __init__(self, request: web.Request, response: web.StreamResponse, timeout_s: float) -> None:
        self._request = request
        self._response = response
        self._timeout_s = timeout_s

    @property
    def gone(self) -> bool:
        """The client closed its end: stop now rather than at the next write."""
        transport = self._request.transport
        return transport is None or transport.is_closing()

    async def send(self, frame: str) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._response.write(frame.encode())
            return True
        except TimeoutError:
            log.info("dropped a stream client that stopped reading (%s)", self._request.remote)
        except (ConnectionResetError, ConnectionError):
            pass
        transport = self._request.transport
        if transport is not None:
            transport.abort()
        return False
