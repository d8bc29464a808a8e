"""The MCP endpoint's route on the client listener, with the MCP SDK loaded by its first request.

The SDK and what it brings (Starlette, anyio, httpx, jsonschema and their models) are about
30 MB of a node's resident memory, more than the rest of the node. A node whose agents use
the REST API only should not carry them, so `/mcp` builds the server (`node.mcp.endpoint`)
when the first MCP request arrives, and keeps its session manager running from then until
the listener shuts down. The first MCP request waits for the import (a few hundred ms).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from node.basics.rate_limit import PostRateLimiter
from node.feed.service import FeedService
from node.http.asgi_bridge import HeldContext
from node.http.auth import Caller
from node.http.openapi import Handler
from node.networks.threads import SharedThreadService
from node.workspace.client_service import ClientService

__all__ = ["MAX_MCP_BODY_BYTES", "mount_mcp"]

# JSON-RPC bodies carry one message of at most 16 KiB (escaped, up to ~6x); 256 KiB is the
# client listener's own body limit.
MAX_MCP_BODY_BYTES = 256 * 1024


def mount_mcp(app: web.Application, *, client: ClientService, shared: SharedThreadService, feed: FeedService,
              limiter: PostRateLimiter, still_valid: Callable[[Caller], Awaitable[bool]], path: str = "/mcp",
              max_body_bytes: int = MAX_MCP_BODY_BYTES) -> None:
    """Serve the MCP endpoint at `path` on `app` (behind its auth and error middlewares);
    `still_valid` tells whether a caller's token still works (open listens re-check it)."""
    handler: Handler | None = None
    running: HeldContext | None = None
    building = asyncio.Lock()

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal handler, running
        if handler is None:
            async with building:
                if handler is None:
                    from node.mcp.endpoint import mcp_handler

                    made, run = mcp_handler(client=client, shared=shared, feed=feed, limiter=limiter, path=path,
                                            max_body_bytes=max_body_bytes, still_valid=still_valid)
                    held = HeldContext(run)
                    await held.enter()
                    handler, running = made, held
        return await handler(request)

    async def stop_when_done(_app: web.Application) -> AsyncIterator[None]:
        yield
        if running is not None:
            await running.exit()

    # No GET: a standalone SSE stream carries server-initiated messages of a session, and a
    # stateless server has none (change notifications come on `subscriptions/listen`, a POST).
    # Clients take the 405 as "no stream offered". DELETE (end a session) gets the SDK's own 405.
    for method in ("POST", "DELETE"):
        app.router.add_route(method, path, handle)
    app.cleanup_ctx.append(stop_when_done)
