"""Client routes for shared threads."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from pydantic import Field

from federation.event_content import MAX_FILE_BYTES
from node.basics.errors import PayloadTooLarge
from node.basics.rate_limit import PostRateLimiter
from node.http.auth import current_caller, current_principal
from node.http.fields import QueryModel
from node.http.io import read_body, read_query, read_raw, respond
from node.http.openapi import Endpoint
from node.http.posting import post_endpoint, read_post, respond_posted
from node.networks.models import (
    ActivityList,
    AddParticipants,
    EditSharedMessage,
    FileOut,
    NetworkParticipants,
    OpenThreadAsParticipant,
    PostSharedMessage,
    React,
    ReactionOut,
    SetActivity,
    SharedMessageOut,
    SharedMessagePage,
    SharedPageQuery,
    SharedSearchQuery,
    SharedSearchResults,
    SharedThreadList,
    ThreadChangeOut,
)
from node.networks.threads import SharedThreadService

__all__ = ["FILE_HEADERS", "shared_thread_endpoints"]


class FileTooLarge(PayloadTooLarge):
    code = "file_too_large"


class UploadQuery(QueryModel):
    name: str = Field(min_length=1, max_length=200, description="the file's name as members will see it")


# A file a browser must never render in this node's origin: it downloads, sandboxed, as what
# its author's node signed (node.networks.files).
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'",
                 "Cache-Control": "private, max-age=3600"}


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
                                    mentions=req.mentions, attachments=req.attachments, data=req.data,
                                    idempotency=key)
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

    async def upload(request: web.Request) -> web.Response:
        limiter.check(current_caller(request).token_id)
        query = read_query(request, UploadQuery)
        data = await read_raw(request, MAX_FILE_BYTES, FileTooLarge)
        me = service.participant(current_principal(request))
        out = await service.files.upload(me, name=query.name, content_type=request.headers.get("Content-Type", ""),
                                         data=data)
        return respond(out, status=201)

    async def download(request: web.Request) -> web.Response:
        m = request.match_info
        attachment, data = await service.files.download(service.participant(current_principal(request)),
                                                        m["network"], m["thread"], m["event"], int(m["position"]))
        headers = {**FILE_HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.name)}",
                   "ETag": f'"{attachment.sha256}"', "Digest": f"sha-256={attachment.sha256}"}
        return web.Response(body=data, content_type=attachment.content_type, headers=headers)

    async def participants(request: web.Request) -> web.Response:
        return respond(await service.network_participants(current_principal(request), request.match_info["network"]))

    async def open_thread(request: web.Request) -> web.Response:
        limiter.check(current_caller(request).token_id)
        req = await read_body(request, OpenThreadAsParticipant)
        return respond(await service.open_thread(current_principal(request), request.match_info["network"], req.name,
                                                 req.title, req.participants), status=201)

    async def add_participants(request: web.Request) -> web.Response:
        limiter.check(current_caller(request).token_id)
        req = await read_body(request, AddParticipants)
        m = request.match_info
        return respond(await service.add_participants(current_principal(request), m["network"], m["thread"],
                                                      req.participants), status=201)

    async def set_activity(request: web.Request) -> web.Response:
        limiter.check(current_caller(request).token_id)
        req = await read_body(request, SetActivity)
        m = request.match_info
        return respond(await service.set_activity(current_principal(request), m["network"], m["thread"], req.state,
                                                  req.ttl_s))

    async def activity(request: web.Request) -> web.Response:
        m = request.match_info
        return respond(await service.activity(current_principal(request), m["network"], m["thread"]))

    async def search(request: web.Request) -> web.Response:
        query = read_query(request, SharedSearchQuery)
        return respond(await service.search(current_principal(request), query.q, network=query.network,
                                            limit=query.limit))

    async def react(request: web.Request) -> web.Response:
        limiter.check(current_caller(request).token_id)
        req = await read_body(request, React)
        m = request.match_info
        out = await service.react(current_principal(request), m["network"], m["thread"], m["event"], req.reaction,
                                  removed=req.removed)
        return respond(out, status=201)

    t = "/v1/networks/{network}/threads/{thread}/messages"
    a = "/v1/networks/{network}/threads/{thread}/activity"
    return [
        Endpoint("GET", "/v1/shared-threads", threads, "Shared threads the caller takes part in",
                 response=SharedThreadList, scope="read", operation_id="list_shared_threads"),
        Endpoint("GET", "/v1/networks/{network}/participants", participants, "Who takes part in a network the caller "
                 "is attached to: display names, agent or person, and companies", response=NetworkParticipants,
                 scope="read", operation_id="list_network_participants"),
        Endpoint("POST", "/v1/networks/{network}/threads", open_thread, "Open a shared thread with the caller among "
                 "its participants (each other company's node applies its own consent policy)",
                 body=OpenThreadAsParticipant, response=ThreadChangeOut, status=201, scope="threads",
                 rate_limited=True, errors=(403, 409), operation_id="open_shared_thread"),
        Endpoint("POST", "/v1/networks/{network}/threads/{thread}/participants", add_participants, "Add participants "
                 "to a shared thread the caller takes part in", body=AddParticipants, response=ThreadChangeOut,
                 status=201, scope="threads", rate_limited=True, errors=(403, 409), operation_id="add_thread_participants"),
        Endpoint("POST", a, set_activity, "Say the caller is typing or working in a thread (or idle): shown to every "
                 "member for ttl_s seconds, never stored", body=SetActivity, response=ActivityList, scope="post",
                 rate_limited=True, errors=(409,), operation_id="set_activity"),
        Endpoint("GET", a, activity, "Who is typing or working in a thread now", response=ActivityList, scope="read",
                 operation_id="get_activity"),
        Endpoint("GET", "/v1/shared-threads/search", search, "Search the messages of the shared threads the caller "
                 "takes part in (this node's copy; every word must match), newest first", query=SharedSearchQuery,
                 response=SharedSearchResults, scope="read", operation_id="search_shared_threads"),
        Endpoint("GET", t, read, "Read a shared thread in the host's order (forwards from `after`, or backwards "
                 "with `before`); pending posts last", query=SharedPageQuery, response=SharedMessagePage, scope="read", operation_id="read_shared_thread"),
        post_endpoint(t, post, "Post in a shared thread (Idempotency-Key header: a retry is stored once)",
                      body=PostSharedMessage, response=SharedMessageOut, operation_id="post_shared_message"),
        Endpoint("PATCH", t + "/{event}", edit, "Edit one of the caller's own messages (every member sees the edit)",
                 body=EditSharedMessage, response=SharedMessageOut, scope="post", errors=(403, 404, 429),
                 rate_limited=True, operation_id="edit_shared_message"),
        Endpoint("DELETE", t + "/{event}", delete, "Delete one of the caller's own messages (a tombstone stays)",
                 response=SharedMessageOut, scope="post", errors=(403, 404, 429), rate_limited=True, operation_id="delete_shared_message"),
        Endpoint("POST", t + "/{event}/reactions", react, "React to a message (\"seen\", \"working\"), or take the "
                 "reaction back with `removed`", body=React, response=ReactionOut, status=201, scope="post",
                 rate_limited=True, operation_id="react_to_message"),
        Endpoint("POST", "/v1/files", upload, f"Upload a file (the raw bytes, with its Content-Type and ?name=; at "
                 f"most {MAX_FILE_BYTES} bytes) to attach to a post in a shared thread", query=UploadQuery,
                 raw_body="application/octet-stream", response=FileOut, status=201, scope="post", rate_limited=True,
                 errors=(403, 409), operation_id="upload_file"),
        Endpoint("GET", t + "/{event}/files/{position}", download, "Download a file of a message (fetched from its "
                 "author's node the first time, and checked against what that node signed), as the type it was "
                 "signed with",
                 media_type="*/*", scope="read", errors=(403, 404, 410, 502, 503), operation_id="download_file"),
    ]
