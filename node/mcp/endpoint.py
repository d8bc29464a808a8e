"""An MCP server on the client listener, so an MCP-capable agent takes part with its token.

The official SDK's `MCPServer` serves Streamable HTTP in stateless mode: each POST is a
complete exchange, answered as a short SSE stream, and the node keeps no MCP session per
client; the tools are the client API again, behind the same bearer-token middleware. The
aiohttp handler passes the verified `Caller` to the SDK in the ASGI scope (`node.http.asgi_bridge`);
a tool reads it back from the Starlette request the SDK hands it (the tool may run in the
session manager's task, so a context variable would not reach it). A tool acts as that caller,
checks the token's scope first and returns JSON (text content plus the same value as
structured content).

Project errors become tool errors (`isError`) with `{"error": {"status", "code", "message"}}`,
never protocol failures, so the session carries on; a thread the caller is not in is "not
found", exactly as on the REST API. Anything else is logged and reported as an internal error.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Annotated, Any, Literal

from aiohttp import web
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from federation.event_content import check_data
from node.basics.errors import InvalidRequest, Unauthorized
from node.basics.rate_limit import PostRateLimiter
from node.feed.filters import FeedFilter
from node.feed.models import EventPage
from node.feed.service import FeedService
from node.http.asgi_bridge import call_asgi
from node.http.auth import Caller, current_caller, require_scope
from node.http.errors import describe
from node.http.fields import MAX_BODY_CHARS, MAX_PAGE
from node.http.idempotency import KEY_PATTERN, bind_key
from node.http.openapi import Handler
from node.mcp.resources import StillValid, ThreadChanges, serve_thread_resources
from node.networks.models import (
    ActivityList,
    NetworkParticipants,
    ReactionOut,
    SharedMessageOut,
    SharedSearchResults,
    SharedThreadOut,
    ThreadChangeOut,
)
from node.networks.threads import SharedThreadService
from node.workspace.client_service import ClientService
from node.workspace.models import KnowledgeResults, ThreadOut
from storage.errors import DatabaseUnavailable

__all__ = ["CALLER_STATE_KEY", "ThreadsOut", "build_mcp_server", "mcp_handler"]

log = logging.getLogger(__name__)

CALLER_STATE_KEY = "agentnet.caller"
# The feed page a long poll returns: enough for a burst, small enough for a model's context.
_WAIT_PAGE = 100

_SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"
ThreadName = Annotated[str, Field(pattern=_SLUG, description="thread name, e.g. billing-escalations")]
NetworkName = Annotated[str, Field(pattern=_SLUG, description="network name; omit for a private thread")]
SharedNetworkName = Annotated[str, Field(pattern=_SLUG, description="network name of the shared thread")]
Mentions = Annotated[list[Annotated[str, Field(max_length=330, pattern=r"^(agent|person):[a-z0-9][a-z0-9._-]{0,63}@\S+$")]],
                     Field(min_length=1, max_length=32, description="e.g. [\"agent:delivery@globex.example\"]")]
EventTypes = Annotated[list[Annotated[str, Field(pattern=r"^[a-z]+\.[a-z]+$")]],
                      Field(min_length=1, max_length=20, description="e.g. [\"message.posted\", \"message.reacted\"]")]
ThreadTitle = Annotated[str, Field(min_length=1, max_length=200, description="shown to every participant")]
Participants = Annotated[list[Annotated[str, Field(max_length=330,
                                                   pattern=r"^(agent|person):[a-z0-9][a-z0-9._-]{0,63}@\S+$")]],
                         Field(min_length=1, max_length=255, description="e.g. [\"agent:delivery@globex.example\"]")]
Reaction = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^\s\x00-\x1f\x7f]+$",
                                description="one word or emoji, e.g. seen or working")]
MessageId = Annotated[str, Field(pattern=r"^\$[A-Za-z0-9_-]{43}$", description="a message's id ($ and 43 characters)")]
Cursor = Annotated[str, Field(pattern=r"^[0-9]{1,18}$", description="a next_cursor from an earlier answer")]
Body = Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS, pattern=r"\S")]
IdemKey = Annotated[str, Field(pattern=KEY_PATTERN, description="1-255 printable ASCII characters")]
Query = Annotated[str, Field(min_length=1, max_length=500, description="words that must all match")]
PageLimit = Annotated[int, Field(ge=1, le=MAX_PAGE)]
SearchLimit = Annotated[int, Field(ge=1, le=100)]
# A wait has to end before the client gives up on the call. The OpenAI Agents SDK's MCP
# session times a call out after 5 s by default and the TypeScript SDK after 60 s, and neither
# counts progress notifications as an answer by default: so a wait is 4 s unless asked for
# longer, and never more than 50 s. Clients that do reset their timeout on progress (the
# TypeScript SDK's `resetTimeoutOnProgress`) get a notification every 2 s while it waits.
MCP_DEFAULT_WAIT_S = 4
MCP_MAX_WAIT_S = 50
_PROGRESS_EVERY_S = 2.0
WaitSeconds = Annotated[float, Field(ge=0, le=MCP_MAX_WAIT_S)]


class MessageResult(BaseModel):
    """A message of a private thread or a shared one (`network`, `seq`, replies, mentions, files,
    reactions: `SharedMessageOut` in the client API's document)."""

    model_config = ConfigDict(extra="allow")

    id: str
    thread: str
    sender: str
    body: str
    created_at: int = Field(description="milliseconds since the epoch, as the author's node stamped it")
    network: str | None = Field(None, description="set for a message of a shared thread")


class PageResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    items: list[MessageResult]
    next_cursor: str | None = Field(description="pass as `after` for the next page; null at the end")
    messages: list[MessageResult] | None = Field(None, description="deprecated: the same as `items`",
                                                 json_schema_extra={"deprecated": True})


class ThreadsOut(BaseModel):
    private: list[ThreadOut] = Field(description="this company's threads the caller belongs to")
    shared: list[SharedThreadOut] = Field(description="shared threads the caller takes part in")


def _json_result(data: dict[str, Any], *, is_error: bool = False) -> CallToolResult:
    text = json.dumps(data, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data, is_error=is_error)


def _error(status: int, code: str, message: str, **extra: Any) -> CallToolResult:
    return _json_result({"error": {"status": status, "code": code, "message": message, **extra}}, is_error=True)


def _error_result(exc: Exception, tool: str) -> CallToolResult:
    """The same status, code and message the REST API would answer with (`node.http.errors`)."""
    described = describe(exc)
    if described is not None:
        status, code, message, extra = described
        if isinstance(exc, DatabaseUnavailable):
            log.error("MCP tool %s: %s", tool, exc.__cause__ or exc)
        return _error(status, code, message, **extra)
    log.error("MCP tool %s failed", tool, exc_info=exc)
    return _error(500, "internal_error", "internal error")


def _caller(ctx: Context) -> Caller:
    return caller_of(ctx.request_context.request)


def caller_of(request: Any) -> Caller:
    """The caller the bridge put in the (Starlette) request's ASGI scope."""
    caller = getattr(request, "scope", {}).get("state", {}).get(CALLER_STATE_KEY)
    if not isinstance(caller, Caller):  # only reachable if the tool is served without the bridge
        raise Unauthorized("a bearer token is required")
    return caller


async def _run(ctx: Context, tool: str, scope: str,
               action: Callable[[Caller], Awaitable[BaseModel]]) -> CallToolResult:
    try:
        caller = _caller(ctx)
        require_scope(caller, scope)
        return _json_result((await action(caller)).model_dump(mode="json"))
    except Exception as exc:  # every failure is this call's result, never the session's end
        return _error_result(exc, tool)


_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def build_mcp_server(*, client: ClientService, shared: SharedThreadService, feed: FeedService,
                     limiter: PostRateLimiter, bus: InMemorySubscriptionBus | None = None,
                     still_valid: StillValid | None = None) -> MCPServer:
    """`bus` and `still_valid` serve shared threads as resources with change notifications
    (`node.mcp.resources`); without them the server has tools only."""
    server = MCPServer(
        "agent-network",
        version=version("agent-network"),
        instructions="Work in your company's private threads and in shared threads with other companies, "
                     "as the person or agent your token belongs to. Shared threads are also resources "
                     "(agentnet://networks/{network}/threads/{thread}) you can follow with subscriptions/listen.",
        subscriptions=False if bus is None else bus,
    )
    if bus is not None and still_valid is not None:
        serve_thread_resources(server, bus=bus, shared=shared, caller_of=caller_of, still_valid=still_valid)

    @server.tool(annotations=_READ_ONLY)
    async def list_threads(ctx: Context) -> Annotated[CallToolResult, ThreadsOut]:
        """List the threads you can read: your company's private threads you belong to, and the shared
        threads (with other companies) you take part in, with their network."""
        async def action(caller: Caller) -> ThreadsOut:
            private = await client.threads(caller.principal)
            shared_threads = await shared.threads(caller.principal)
            return ThreadsOut(private=private.items, shared=shared_threads.items)

        return await _run(ctx, "list_threads", "read", action)

    @server.tool(annotations=_READ_ONLY)
    async def read_thread(ctx: Context, thread: ThreadName, network: NetworkName | None = None,
                          after: Cursor | None = None,
                          limit: PageLimit = 50) -> Annotated[CallToolResult, PageResult]:
        """Read a thread's messages, oldest first. Give `network` for a shared thread, omit it for a
        private one. To page, pass the answer's `next_cursor` as `after`; it is null at the end."""
        async def action(caller: Caller) -> BaseModel:
            start = int(after or 0)
            if network is None:
                return await client.read(caller.principal, thread, after=start, limit=limit)
            return await shared.read(caller.principal, network, thread, after=start, limit=limit)

        return await _run(ctx, "read_thread", "read", action)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=False, open_world_hint=True))
    async def post_message(ctx: Context, thread: ThreadName, body: Body, network: NetworkName | None = None,
                           idempotency_key: IdemKey | None = None, reply_to: MessageId | None = None,
                           mentions: Mentions | None = None,
                           data: dict[str, Any] | None = None) -> Annotated[CallToolResult, MessageResult]:
        """Post a message as yourself. Give `network` for a shared thread (the other companies in it
        will see the message), omit it for a private thread of your company. In a shared thread,
        `reply_to` (a message's `id`) answers that message. If you may retry a post whose answer you
        did not get, give the same `idempotency_key` each time (a UUID, say): the message is then
        stored once. `mentions`: participant ids of the shared thread you address (they can wait
        for mentions of themselves only). `data`: structured content beside the text for another
        agent to read as is (a JSON object, at most 8 KiB, integers only)."""
        async def action(caller: Caller) -> BaseModel:
            limiter.check(caller.token_id)
            key = None if idempotency_key is None else bind_key(
                idempotency_key, f"mcp post_message {network or ''}/{thread} {reply_to or ''} {mentions or ''} "
                                 f"{json.dumps(data, sort_keys=True) if data is not None else ''}", body)
            if data is not None:
                try:
                    check_data(data)
                except ValueError as e:
                    raise InvalidRequest(f"data: {e}", [{"field": "data", "location": "body", "message": str(e)}]) \
                        from None
            if network is None:
                for name, given in (("reply_to", reply_to), ("mentions", mentions), ("data", data)):
                    if given is not None:
                        raise InvalidRequest(f"{name} is for shared threads", [
                            {"field": name, "location": "body", "message": f"give network, or leave {name} out"}])
                return (await client.post(caller.principal, thread, body, idempotency=key)).value
            return (await shared.post(caller.principal, network, thread, body, reply_to=reply_to,
                                      mentions=mentions, data=data, idempotency=key)).value

        return await _run(ctx, "post_message", "post", action)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                             idempotent_hint=False, open_world_hint=True))
    async def edit_message(ctx: Context, network: SharedNetworkName, thread: ThreadName, message_id: MessageId,
                           body: Body | None = None) -> Annotated[CallToolResult, SharedMessageOut]:
        """Replace the body of one of your own messages in a shared thread (post "working on it",
        then edit it into the answer), or, without `body`, delete it (a tombstone stays). Every
        company in the thread sees the change."""
        async def action(caller: Caller) -> BaseModel:
            limiter.check(caller.token_id)
            return await shared.change(caller.principal, network, thread, message_id, body=body)

        return await _run(ctx, "edit_message", "post", action)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=True, open_world_hint=True))
    async def react(ctx: Context, network: SharedNetworkName, thread: ThreadName, message_id: MessageId,
                    reaction: Reaction, removed: bool = False) -> Annotated[CallToolResult, ReactionOut]:
        """Acknowledge a message in a shared thread without a reply: "seen" when you have read it,
        "working" while you act on it (one word or emoji). `removed` takes your reaction back.
        Every company in the thread sees it."""
        async def action(caller: Caller) -> ReactionOut:
            limiter.check(caller.token_id)
            return await shared.react(caller.principal, network, thread, message_id, reaction, removed=removed)

        return await _run(ctx, "react", "post", action)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=True, open_world_hint=True))
    async def set_activity(ctx: Context, network: SharedNetworkName, thread: ThreadName,
                           state: Literal["typing", "working", "idle"],
                           ttl_seconds: Annotated[int, Field(ge=1, le=60)] = 30) -> Annotated[CallToolResult,
                                                                                              ActivityList]:
        """Show the others in a shared thread that you are working on something ("working") or
        writing ("typing"), for `ttl_seconds` unless you set it again; "idle" clears it. It is
        not part of the history. The answer lists who is active there now."""
        async def action(caller: Caller) -> ActivityList:
            limiter.check(caller.token_id)
            return await shared.set_activity(caller.principal, network, thread, state, ttl_seconds)

        return await _run(ctx, "set_activity", "post", action)

    @server.tool(annotations=_READ_ONLY)
    async def search_knowledge(ctx: Context, query: Query,
                               limit: SearchLimit = 10) -> Annotated[CallToolResult, KnowledgeResults]:
        """Search your company's knowledge items that you may read; every word must match."""
        async def action(caller: Caller) -> KnowledgeResults:
            return await client.search_knowledge(caller.principal, query, limit=limit)

        return await _run(ctx, "search_knowledge", "knowledge:read", action)

    @server.tool(annotations=_READ_ONLY)
    async def list_participants(ctx: Context,
                                network: SharedNetworkName) -> Annotated[CallToolResult, NetworkParticipants]:
        """Who takes part in a network you are attached to: each participant's id (to mention or
        add them), display name, agent or person, and company."""
        async def action(caller: Caller) -> NetworkParticipants:
            return await shared.network_participants(caller.principal, network)

        return await _run(ctx, "list_participants", "read", action)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=False, open_world_hint=True))
    async def open_thread(ctx: Context, network: SharedNetworkName, name: ThreadName, title: ThreadTitle,
                          participants: Participants) -> Annotated[CallToolResult, ThreadChangeOut]:
        """Open a shared thread in a network you are attached to, with you and `participants`
        (ids from list_participants). Needs a token the operator gave the `threads` scope; each
        other company may hold the thread back until its operator accepts it."""
        async def action(caller: Caller) -> ThreadChangeOut:
            limiter.check(caller.token_id)
            return await shared.open_thread(caller.principal, network, name, title, participants)

        return await _run(ctx, "open_thread", "threads", action)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=False, open_world_hint=True))
    async def add_participants(ctx: Context, network: SharedNetworkName, thread: ThreadName,
                               participants: Participants) -> Annotated[CallToolResult, ThreadChangeOut]:
        """Add participants (ids from list_participants) to a shared thread you take part in
        (the `threads` scope)."""
        async def action(caller: Caller) -> ThreadChangeOut:
            limiter.check(caller.token_id)
            return await shared.add_participants(caller.principal, network, thread, participants)

        return await _run(ctx, "add_participants", "threads", action)

    @server.tool(annotations=_READ_ONLY)
    async def search_messages(ctx: Context, query: Query, network: NetworkName | None = None,
                              limit: SearchLimit = 10) -> Annotated[CallToolResult, SharedSearchResults]:
        """Search the messages of the shared threads you take part in (every word must match),
        newest first; `network` narrows it to one network."""
        async def action(caller: Caller) -> SharedSearchResults:
            return await shared.search(caller.principal, query, network=network, limit=limit)

        return await _run(ctx, "search_messages", "read", action)

    @server.tool(annotations=_READ_ONLY)
    async def wait_for_messages(ctx: Context, after: Cursor | None = None,
                                timeout_seconds: WaitSeconds = MCP_DEFAULT_WAIT_S,
                                mentions_only: bool = False, network: NetworkName | None = None,
                                thread: ThreadName | None = None,
                                types: EventTypes | None = None) -> Annotated[CallToolResult, EventPage]:
        """Wait for new messages and events in the threads you can read, for up to `timeout_seconds`
        (default 4, at most 50; call again to keep waiting). Answers at once when something is
        there, else when the time is up with no events. Always pass the answer's `next_cursor` back as `after` on the next call (also when
        `items` is empty) so you get exactly what came after; omit `after` only on the first call,
        to start from now. Follow less than everything: `mentions_only` (messages that mention
        you), `network`, `thread` (by name), `types` (e.g. ["message.posted"])."""
        async def action(caller: Caller) -> EventPage:
            only = FeedFilter.of(network=network, thread=thread, types=types, mentions=mentions_only)
            total = min(timeout_seconds, MCP_MAX_WAIT_S)
            started = time.monotonic()
            cursor = after
            while True:  # in slices, with a progress notification between them (if the client asked)
                left = total - (time.monotonic() - started)
                page = await feed.wait(caller.principal, cursor, limit=_WAIT_PAGE,
                                       timeout_s=max(0.0, min(_PROGRESS_EVERY_S, left)), only=only)
                if page.items or left <= _PROGRESS_EVERY_S or feed.hub.closed:
                    return page
                cursor = page.next_cursor
                await ctx.report_progress(round(time.monotonic() - started, 1), total, "waiting for messages")

        return await _run(ctx, "wait_for_messages", "read", action)

    return server


def mcp_handler(*, client: ClientService, shared: SharedThreadService, feed: FeedService,
                limiter: PostRateLimiter, path: str, max_body_bytes: int,
                still_valid: StillValid) -> tuple[Handler, Callable[[], Any]]:
    """The aiohttp handler for `path`, and what to keep entered while it serves: the session
    manager and the task that publishes thread changes (`node.mcp.mount` mounts both)."""
    bus = InMemorySubscriptionBus()
    server = build_mcp_server(client=client, shared=shared, feed=feed, limiter=limiter, bus=bus,
                              still_valid=still_valid)
    server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,
        max_request_body_size=max_body_bytes,
        # DNS-rebinding checks guard servers that trust whoever can reach them; this one wants a
        # bearer token, which a rebound page cannot present, and is reached under any host name.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )  # only for its session manager: the Starlette app around it is not used
    manager = server.session_manager

    async def handle(request: web.Request) -> web.StreamResponse:
        state = {CALLER_STATE_KEY: current_caller(request)}
        return await call_asgi(manager.handle_request, request, state=state)

    @asynccontextmanager
    async def run() -> AsyncIterator[None]:
        async with manager.run(), ThreadChanges(feed, bus).running():
            yield

    return handle, run
