"""The admin listener's routes: operators manage people, agents, private threads, knowledge
and read the audit log. Bound to loopback only (see node.basics.config)."""

from __future__ import annotations

from aiohttp import web

from node.basics.errors import InvalidRequest
from node.http.auth import current_admin
from node.http.io import read_body, read_query, respond
from node.http.openapi import Endpoint
from node.workspace.admin_service import AdminService
from node.workspace.models import (
    AddKnowledge,
    AuditCheckOut,
    AuditPage,
    AuditQuery,
    AuditVerifyQuery,
    CreatePrincipal,
    CreateThread,
    Deleted,
    IssuedToken,
    IssueToken,
    KnowledgeOut,
    KnowledgePage,
    KnowledgeResults,
    PageQuery,
    PrincipalList,
    PrincipalOut,
    PrincipalWithToken,
    RenamePrincipal,
    SearchQuery,
    SetMembers,
    StatusOut,
    ThreadList,
    ThreadOut,
    TokenInfo,
    TokenList,
    TokenOut,
)
from storage.private.audit import AuditFilter

__all__ = ["admin_endpoints"]

_KINDS = {"agents": "agent", "people": "person", "apps": "app"}


def admin_endpoints(service: AdminService) -> list[Endpoint]:
    async def status(request: web.Request) -> web.Response:
        return respond(await service.status())

    def principal_endpoints(plural: str) -> list[Endpoint]:
        kind = _KINDS[plural]

        async def create(request: web.Request) -> web.Response:
            req = await read_body(request, CreatePrincipal)
            created = await service.create_principal(kind, req, actor=current_admin(request))
            return respond(created, status=201)

        async def list_(request: web.Request) -> web.Response:
            return respond(await service.list_principals(kind))

        def set_disabled(disabled: bool):
            async def handler(request: web.Request) -> web.Response:
                handle = request.match_info["handle"]
                out = await service.set_disabled(kind, handle, disabled, actor=current_admin(request))
                return respond(out)

            return handler

        async def rotate(request: web.Request) -> web.Response:
            handle = request.match_info["handle"]
            req = await read_body(request, IssueToken) if request.body_exists else IssueToken()
            return respond(await service.rotate_token(kind, handle, req, actor=current_admin(request)))

        async def issue(request: web.Request) -> web.Response:
            req = await read_body(request, IssueToken)
            out = await service.issue_token(kind, request.match_info["handle"], req, actor=current_admin(request))
            return respond(out, status=201)

        async def tokens(request: web.Request) -> web.Response:
            return respond(await service.list_tokens(kind, request.match_info["handle"]))

        async def revoke(request: web.Request) -> web.Response:
            token_id = int(request.match_info["token_id"])  # digits: node.http.path_parameters
            out = await service.revoke_token(kind, request.match_info["handle"], token_id,
                                             actor=current_admin(request))
            return respond(out)

        async def revoke_all(request: web.Request) -> web.Response:
            return respond(await service.revoke_all_tokens(kind, request.match_info["handle"],
                                                           actor=current_admin(request)))

        async def rename(request: web.Request) -> web.Response:
            req = await read_body(request, RenamePrincipal)
            return respond(await service.rename(kind, request.match_info["handle"], req, actor=current_admin(request)))

        base = f"/v1/{plural}"
        return [
            Endpoint("PATCH", base + "/{handle}", rename, f"Change a {kind}'s display name or profile here",
                     body=RenamePrincipal, response=PrincipalOut),
            Endpoint("POST", base, create, f"Create a {kind}; returns its token once",
                     body=CreatePrincipal, response=PrincipalWithToken, status=201, errors=(409,)),
            Endpoint("GET", base, list_, f"List {plural}", response=PrincipalList),
            Endpoint("POST", base + "/{handle}/disable", set_disabled(True),
                     f"Disable a {kind}: its tokens stop working at once", response=PrincipalOut),
            Endpoint("POST", base + "/{handle}/enable", set_disabled(False),
                     f"Enable a {kind} again", response=PrincipalOut),
            Endpoint("POST", base + "/{handle}/token", rotate,
                     f"Rotate a {kind}'s token: revokes every earlier token (optional body: scopes, expiry)",
                     body=IssueToken, body_required=False, response=TokenOut),
            Endpoint("POST", base + "/{handle}/tokens", issue, f"Issue one more token for a {kind}",
                     body=IssueToken, response=IssuedToken, status=201),
            Endpoint("GET", base + "/{handle}/tokens", tokens, f"List a {kind}'s tokens (never the secrets)",
                     response=TokenList),
            Endpoint("POST", base + "/{handle}/tokens/{token_id}/revoke", revoke,
                     "Revoke one token: refused at once, open streams end", response=TokenInfo),
            Endpoint("POST", base + "/{handle}/tokens/revoke", revoke_all,
                     f"Revoke every token of a {kind} at once (it stays enabled; issue a new token to bring it "
                     "back)", response=TokenList),
        ]

    async def create_thread(request: web.Request) -> web.Response:
        req = await read_body(request, CreateThread)
        return respond(await service.create_thread(req, actor=current_admin(request)), status=201)

    async def list_threads(request: web.Request) -> web.Response:
        return respond(await service.list_threads())

    async def get_thread(request: web.Request) -> web.Response:
        return respond(await service.get_thread(request.match_info["name"]))

    async def set_members(request: web.Request) -> web.Response:
        req = await read_body(request, SetMembers)
        out = await service.set_members(request.match_info["name"], req.members, actor=current_admin(request))
        return respond(out)

    async def delete_thread(request: web.Request) -> web.Response:
        return respond(await service.delete_thread(request.match_info["name"], actor=current_admin(request)))

    async def delete_knowledge(request: web.Request) -> web.Response:
        item = int(request.match_info["item"])  # digits: node.http.path_parameters
        return respond(await service.delete_knowledge(item, actor=current_admin(request)))

    async def add_knowledge(request: web.Request) -> web.Response:
        req = await read_body(request, AddKnowledge)
        return respond(await service.add_knowledge(req, actor=current_admin(request)), status=201)

    async def list_knowledge(request: web.Request) -> web.Response:
        query = read_query(request, PageQuery)
        return respond(await service.list_knowledge(after=int(query.after or 0), limit=query.limit))

    async def search_knowledge(request: web.Request) -> web.Response:
        query = read_query(request, SearchQuery)
        return respond(await service.search_knowledge(query.q, limit=query.limit))

    async def audit(request: web.Request) -> web.Response:
        query = read_query(request, AuditQuery)
        if query.after is not None and query.before is not None:
            raise InvalidRequest("give `after` (or its old name `before`), not both",
                                 [{"field": "before", "location": "query", "message": "the same as after"}])
        cursor = query.after if query.after is not None else query.before
        before = int(cursor) if cursor is not None else None
        where = AuditFilter(actor=query.actor, action=query.action, network=query.network, partner=query.partner,
                            since=query.since, until=query.until)
        return respond(await service.audit(before=before, limit=query.limit, where=where))

    async def verify_audit(request: web.Request) -> web.Response:
        query = read_query(request, AuditVerifyQuery)
        anchor = None
        if query.anchor is not None:
            seq, digest = query.anchor.split(":")
            anchor = (int(seq), digest)
        return respond(await service.verify_audit(anchor=anchor))

    return [
        Endpoint("GET", "/v1/status", status, "Node status", response=StatusOut),
        *principal_endpoints("people"),
        *principal_endpoints("agents"),
        *principal_endpoints("apps"),
        Endpoint("POST", "/v1/threads", create_thread, "Create a private thread",
                 body=CreateThread, response=ThreadOut, status=201, errors=(404, 409)),
        Endpoint("GET", "/v1/threads", list_threads, "List private threads", response=ThreadList),
        Endpoint("GET", "/v1/threads/{name}", get_thread, "Show a private thread", response=ThreadOut),
        Endpoint("PUT", "/v1/threads/{name}/members", set_members,
                 "Replace a private thread's members", body=SetMembers, response=ThreadOut),
        Endpoint("DELETE", "/v1/threads/{name}", delete_thread, "Delete a private thread with its messages",
                 response=Deleted),
        Endpoint("DELETE", "/v1/knowledge/{item}", delete_knowledge, "Delete a knowledge item", response=Deleted),
        Endpoint("POST", "/v1/knowledge", add_knowledge, "Add a knowledge item",
                 body=AddKnowledge, response=KnowledgeOut, status=201, errors=(404,)),
        Endpoint("GET", "/v1/knowledge", list_knowledge, "List knowledge items",
                 query=PageQuery, response=KnowledgePage),
        Endpoint("GET", "/v1/knowledge/search", search_knowledge, "Full-text search of knowledge",
                 query=SearchQuery, response=KnowledgeResults),
        Endpoint("GET", "/v1/audit", audit, "Audit log, newest first, filtered by actor, action, network, "
                 "partner and time", query=AuditQuery, response=AuditPage),
        Endpoint("GET", "/v1/audit/verify", verify_audit, "Check the audit log's hash chain from its first entry "
                 "(ok false names the first entry that does not hold)", query=AuditVerifyQuery,
                 response=AuditCheckOut),
    ]
