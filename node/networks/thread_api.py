"""Client routes for shared threads."""

from __future__ import annotations

from aiohttp import web

from node.basics.rate_limit import PostRateLimiter
from node.http.auth import current_principal
from node.http.io import read_query, respond
from node.http.openapi import Endpoint
from node.http.posting import post_endpoint, read_post, respond_posted
from node.networks.models import PostSharedMessage, SeqPageQuery, SharedMessageOut, SharedMessagePage, SharedThreadList
from node.networks.threads import SharedThreadService

__all__ = ["shared_thread_endpoints"]


def shared_thread_endpoints(service: SharedThreadService, limiter: PostRateLimiter) -> list[Endpoint]:
    async def threads(request: web.Request) -> web.Response:
        return respond(await service.threads(current_principal(request)))

    async def read(request: web.Request) -> web.Response:
        query = read_query(request, SeqPageQuery)
        page = await service.read(current_principal(request), request.match_info["network"],
                                  request.match_info["thread"], after=int(query.after or 0), limit=query.limit)
        return respond(page)

    async def post(request: web.Request) -> web.Response:
        req, key = await read_post(request, PostSharedMessage, limiter)
        posted = await service.post(current_principal(request), request.match_info["network"],
                                    request.match_info["thread"], req.body, idempotency=key)
        return respond_posted(posted)

    t = "/v1/networks/{network}/threads/{thread}/messages"
    return [
        Endpoint("GET", "/v1/shared-threads", threads, "Shared threads the caller takes part in",
                 response=SharedThreadList, scope="read"),
        Endpoint("GET", t, read, "Read a shared thread in the host's order; pending posts last",
                 query=SeqPageQuery, response=SharedMessagePage, scope="read"),
        post_endpoint(t, post, "Post in a shared thread (Idempotency-Key header: a retry is stored once)",
                      body=PostSharedMessage, response=SharedMessageOut),
    ]
