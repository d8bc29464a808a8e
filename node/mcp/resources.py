"""Shared threads as MCP resources, with change notifications.

Each shared thread the caller takes part in is a resource,
`agentnet://networks/{network}/threads/{thread}`, whose content is its latest messages (the
same page as `GET .../messages?before=latest`). `resources/list` lists the caller's threads.

A client follows threads with `subscriptions/listen` (MCP 2026-07-28): the listen request's
own response is the stream, so it works on this stateless endpoint, which keeps no session to
push on. The node checks when the listen arrives that the caller may read every thread it
names (else it is refused), and checks again every few seconds while it is open: a revoked
token, or a thread the caller was taken out of, ends the stream (the client listens again and
is refused). A notification says only "this thread changed"; the client then reads the
resource, where its access is checked once more. Notifications come from a task following
this node's feed (`ThreadChanges`), so a change made through any node process reaches every
listener within the feed's poll interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    ListResourcesResult,
    PaginatedRequestParams,
    Resource,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)

from node.basics.errors import NodeError, NotFoundError
from node.feed.service import FeedService
from node.http.auth import Caller, require_scope
from node.networks.threads import SharedThreadService
from storage.errors import DatabaseUnavailable, NotFound

__all__ = ["THREAD_URI", "ThreadChanges", "serve_thread_resources", "thread_uri"]

log = logging.getLogger(__name__)

THREAD_URI = "agentnet://networks/{network}/threads/{thread}"
# The messages a thread resource holds: the latest, like a chat window.
RESOURCE_MESSAGES = 50
# One listen follows at most this many threads; a token has at most this many listens open.
MAX_LISTENED_THREADS = 100
MAX_LISTENS_PER_TOKEN = 4
# How often an open listen re-checks its token and the threads it follows.
LISTEN_RECHECK_S = 5.0

CallerOf = Callable[[Any], Caller]
StillValid = Callable[[Caller], Awaitable[bool]]


def thread_uri(network: str, thread: str) -> str:
    return THREAD_URI.format(network=network, thread=thread)


def serve_thread_resources(server: MCPServer, *, bus: InMemorySubscriptionBus, shared: SharedThreadService,
                           caller_of: CallerOf, still_valid: StillValid) -> None:
    """Register the thread resource, the caller's resource list and the checked listen on `server`
    (built with `subscriptions=bus`)."""

    @server.resource(THREAD_URI, name="shared-thread", mime_type="application/json",
                     description="A shared thread you take part in: its latest messages, newest last")
    async def shared_thread(network: str, thread: str, ctx: Context) -> str:
        caller = caller_of(ctx.request_context.request)
        try:
            require_scope(caller, "read")
            page = await shared.read_back(caller.principal, network, thread, before=None, limit=RESOURCE_MESSAGES)
        except (NotFound, NotFoundError):
            raise ResourceNotFoundError(f"no shared thread {network}/{thread} that you take part in") from None
        except NodeError as e:
            raise ResourceError(f"{e.code}: {e.message}") from None
        return page.model_dump_json()

    async def readable(caller: Caller) -> dict[str, str]:
        """URI -> title of each shared thread the caller takes part in."""
        return {thread_uri(t.network, t.name): t.title for t in (await shared.threads(caller.principal)).items}

    async def list_resources(ctx: ServerRequestContext[Any, Any],
                             params: PaginatedRequestParams | None) -> ListResourcesResult:
        caller = _checked(caller_of, ctx.request)
        return ListResourcesResult(resources=[
            Resource(uri=uri, name=uri.removeprefix("agentnet://"), title=title, mime_type="application/json",
                     description="a shared thread: its latest messages")
            for uri, title in sorted((await readable(caller)).items())])

    listen = _CheckedListen(ListenHandler(bus, max_subscriptions=1024, max_buffered_events=256), caller_of,
                            readable, still_valid)
    lowlevel = server._lowlevel_server  # the SDK's way to serve a method with its request context
    lowlevel.add_request_handler("resources/list", PaginatedRequestParams, list_resources)
    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listen)


def _checked(caller_of: CallerOf, request: Any) -> Caller:
    try:
        caller = caller_of(request)
        require_scope(caller, "read")
    except NodeError as e:
        raise MCPError(INVALID_REQUEST, f"{e.code}: {e.message}") from None
    return caller


class _CheckedListen:
    """`subscriptions/listen`, allowed only for threads the caller may read, and ended when that
    stops being so."""

    def __init__(self, inner: ListenHandler, caller_of: CallerOf,
                 readable: Callable[[Caller], Awaitable[dict[str, str]]], still_valid: StillValid) -> None:
        self._inner = inner
        self._caller_of = caller_of
        self._readable = readable
        self._still_valid = still_valid
        self._open: Counter[int] = Counter()  # token id -> listens open

    async def __call__(self, ctx: ServerRequestContext[Any, Any],
                       params: SubscriptionsListenRequestParams) -> SubscriptionsListenResult:
        caller = _checked(self._caller_of, ctx.request)
        uris = list(dict.fromkeys(params.notifications.resource_subscriptions or ()))
        if len(uris) > MAX_LISTENED_THREADS:
            raise MCPError(INVALID_PARAMS, f"follow at most {MAX_LISTENED_THREADS} threads in one listen")
        if refused := await self._refused(caller, uris):
            raise MCPError(INVALID_PARAMS, f"{refused} is not a shared thread you take part in "
                                           f"({THREAD_URI}; resources/list lists yours)")
        if self._open[caller.token_id] >= MAX_LISTENS_PER_TOKEN:
            raise MCPError(INVALID_REQUEST, f"this token has {MAX_LISTENS_PER_TOKEN} listens open already; "
                                            "follow several threads in one listen")
        self._open[caller.token_id] += 1
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch, caller, uris, group.cancel_scope)
                result = await self._inner(ctx, params)
                group.cancel_scope.cancel()
            return result
        finally:
            self._open[caller.token_id] -= 1
            if not self._open[caller.token_id]:
                del self._open[caller.token_id]

    async def _refused(self, caller: Caller, uris: list[str]) -> str | None:
        mine = await self._readable(caller)
        return next((u for u in uris if u not in mine), None)

    async def _watch(self, caller: Caller, uris: list[str], scope: anyio.CancelScope) -> None:
        """End the stream (abruptly, per the spec: the client listens again) once the token or a
        followed thread is no longer the caller's."""
        while True:
            await anyio.sleep(LISTEN_RECHECK_S)
            try:
                if not await self._still_valid(caller) or await self._refused(caller, uris):
                    scope.cancel()
                    return
            except DatabaseUnavailable:
                continue  # keep the stream; check again at the next interval


class ThreadChanges:
    """Follows this node's feed and publishes `ResourceUpdated` for every shared thread with
    something new, once per thread per read."""

    def __init__(self, feed: FeedService, bus: InMemorySubscriptionBus, *, poll_s: float = 1.0) -> None:
        self._feed = feed
        self._bus = bus
        self._poll_s = poll_s

    async def run(self) -> None:
        position: int | None = None
        while not self._feed.hub.closed:
            waiter = self._feed.hub.waiter()
            try:
                changed, position = await self._feed.threads_changed(position)
            except DatabaseUnavailable:
                await asyncio.sleep(self._poll_s)
                continue
            for network, thread in dict.fromkeys(changed):
                await self._bus.publish(ResourceUpdated(thread_uri(network, thread)))
            await self._feed.hub.wait(waiter, self._poll_s)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.run(), name="mcp-thread-changes")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

