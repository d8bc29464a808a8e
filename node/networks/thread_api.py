"""Client routes for shared threads."""

from __future__ import annotations

from aiohttp import web

from node.basics.rate_limit import PostRateLimiter
from node.http.auth import current_caller, current_principal
from node.http.io import read_body, read_query, respond
from node.http.openapi import Endpoint
from node.http.posting import post_endpoint, read_post, respond_posted
from node.networks.models import (
    EditSharedMessage,
    PostSharedMessage,
    SharedMessageOut,
    SharedMessagePage,
    SharedPageQuery,
    SharedThreadList,
)
from node.networks.threads import SharedThreadService

__all__ = ["shared_thread_endpoints"]


def shared_thread_endpoints(service: SharedThreadService, limiter: PostRateLimiter) -> list[Endpoint]:
    async def threads(request: web.Request) -> web.Response:
        return respond(await service.threads(current_principal(request)))

    async def read(request: web.Request) -> web.Response:
        query = read_query(request, SharedPageQuery)
        network, thread = request.match_info["network"], request.match_info["thread"]
        if query.before is not None:
            before = None if query.before == "latest" else int(query.before)
            return respond(await service.read_back(current_principal(request), network, thread, before=before,
                                                   limit=query.limit))
        return respond(await service.read(current_principal(request), network, thread, after=int(query.after or 0),
                                          limit=query.limit))

    async def post(request: web.Request) -> web.Response:
        req, key = await read_post(request, PostSharedMessage, limiter)
        posted = await service.post(current_principal(request), request.match_info["network"],
                                    request.match_info["thread"], req.body, reply_to=req.reply_to,
                                    mentions=req.mentions, idempotency=key)
        return respond_posted(posted)

    async def edit(request: web.Request) -> web.Response:
        limiter.check(current_caller(request).token_id)
        req = await read_body(request, EditSharedMessage)
        return respond(await service.change(current_principal(request), request.match_info["network"],
                                            request.match_info["thread"], request.match_info["event"], body=req.body))

    async def delete(request: web.Request) -> web.Response:
        limiter.check(current_caller(request).token_id)
        return respond(await service.change(current_principal(request), request.match_info["network"],
                                            request.match_info["thread"], request.match_info["event"], body=None))

    t = "/v1/networks/{network}/threads/{thread}/messages"
    return [
        Endpoint("GET", "/v1/shared-threads", threads, "Shared threads the caller takes part in",
                 response=SharedThreadList, scope="read"),
        Endpoint("GET", t, read, "Read a shared thread in the host's order (forwards from `after`, or backwards "
                 "with `before`); pending posts last", query=SharedPageQuery, response=SharedMessagePage, scope="read"),
        post_endpoint(t, post, "Post in a shared thread (Idempotency-Key header: a retry is stored once)",
                      body=PostSharedMessage, response=SharedMessageOut),
        Endpoint("PATCH", t + "/{event}", edit, "Edit one of the caller's own messages (every member sees the edit)",
                 body=EditSharedMessage, response=SharedMessageOut, scope="post", errors=(403, 404, 429),
                 rate_limited=True),
        Endpoint("DELETE", t + "/{event}", delete, "Delete one of the caller's own messages (a tombstone stays)",
                 response=SharedMessageOut, scope="post", errors=(403, 404, 429), rate_limited=True),
    ]
