"""The client listener's routes: people and agents act as themselves with their bearer token."""

from __future__ import annotations

from aiohttp import web

from node.basics.rate_limit import PostRateLimiter
from node.http.auth import current_principal
from node.http.io import read_query, respond
from node.http.openapi import Endpoint
from node.http.posting import post_endpoint, read_post, respond_posted
from node.workspace.client_service import ClientService
from node.workspace.directory import Directory
from node.workspace.models import (
    KnowledgeResults,
    MessageOut,
    MessagePage,
    PageQuery,
    PostMessage,
    PrincipalOut,
    SearchQuery,
    ThreadList,
)

__all__ = ["client_endpoints"]


def client_endpoints(service: ClientService, directory: Directory, limiter: PostRateLimiter) -> list[Endpoint]:
    async def whoami(request: web.Request) -> web.Response:
        return respond(directory.describe(current_principal(request)))

    async def threads(request: web.Request) -> web.Response:
        return respond(await service.threads(current_principal(request)))

    async def read(request: web.Request) -> web.Response:
        query = read_query(request, PageQuery)
        page = await service.read(
            current_principal(request), request.match_info["name"],
            after=int(query.after or 0), limit=query.limit,
        )
        return respond(page)

    async def post(request: web.Request) -> web.Response:
        req, key = await read_post(request, PostMessage, limiter)
        posted = await service.post(current_principal(request), request.match_info["name"], req.body,
                                    idempotency=key)
        return respond_posted(posted)

    async def search(request: web.Request) -> web.Response:
        query = read_query(request, SearchQuery)
        return respond(await service.search_knowledge(current_principal(request), query.q, limit=query.limit))

    return [
        Endpoint("GET", "/v1/whoami", whoami, "Who the token belongs to", response=PrincipalOut,
                 operation_id="whoami"),
        Endpoint("GET", "/v1/threads", threads, "Private threads the caller belongs to", response=ThreadList,
                 scope="read", operation_id="list_private_threads"),
        Endpoint("GET", "/v1/threads/{name}/messages", read,
                 "Read a thread, oldest first, with cursor pagination", query=PageQuery, response=MessagePage,
                 scope="read", operation_id="read_private_thread"),
        post_endpoint("/v1/threads/{name}/messages", post,
                      "Post in a thread (Idempotency-Key header: a retry is stored once)",
                      body=PostMessage, response=MessageOut, operation_id="post_private_message"),
        Endpoint("GET", "/v1/knowledge/search", search, "Search the knowledge the caller may read",
                 query=SearchQuery, response=KnowledgeResults, scope="knowledge:read", operation_id="search_knowledge"),
    ]
