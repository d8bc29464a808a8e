"""The composition root: builds each listener's application from its collaborators.

Nothing here reads configuration or opens resources at import; `node.main.runner` owns the
lifecycle and hands in the storage, clock and limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from importlib.metadata import version

from aiohttp import web

from node.basics.clock import Clock
from node.basics.rate_limit import PostRateLimiter
from node.http.auth import (
    admin_authenticator,
    auth_middleware,
    caller_or_none,
    current_caller,
    current_operator,
    principal_authenticator,
    require_scope,
)
from node.http.errors import error_middleware
from node.http.openapi import RATE_LIMIT_HEADERS, Endpoint, Handler, add_endpoints, openapi_document
from node.http.roles import area_of, permits
from node.mcp.resource_metadata import challenge, resource_metadata_endpoints
from node.workspace.admin_api import admin_endpoints
from node.workspace.admin_service import AdminService
from node.workspace.apps import ACT_AS_HEADER, act_as_resolver, app_endpoints
from node.workspace.client_api import client_endpoints
from node.workspace.client_service import ClientService
from node.workspace.directory import Directory
from node.workspace.operators import operator_endpoints

__all__ = ["DEFAULT_MAX_BODY_BYTES", "build_admin_app", "build_client_app"]

# Bodies are JSON with at most a 64 KiB knowledge item or a 16 KiB message; 256 KiB leaves
# room for escaping and many members while keeping a hostile client from buffering megabytes.
DEFAULT_MAX_BODY_BYTES = 256 * 1024
_OPENAPI_PATH = "/openapi.json"


def _app(title: str, endpoints: Sequence[Endpoint], authenticate, max_body_bytes: int, *,
         listener: str, resolve=None) -> web.Application:
    every_answer = RATE_LIMIT_HEADERS if listener == "client" else ()
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[error_middleware,
                     auth_middleware(authenticate, {_OPENAPI_PATH, *(e.path for e in endpoints if e.public)},
                                     listener=listener, resolve=resolve,
                                     own_auth="/app" if listener == "client" else "/console")],
    )
    add_endpoints(app, endpoints, guard=_permitted if listener == "admin" else _scoped)
    document: list[dict] = []  # built at the first request: few nodes are ever asked, and it is large

    async def openapi(_request: web.Request) -> web.Response:
        if not document:
            document.append(openapi_document(title, version("agent-network"), endpoints,
                                             every_answer_headers=every_answer))
        return web.json_response(document[0])

    app.router.add_get(_OPENAPI_PATH, openapi)
    return app


def _permitted(endpoint: Endpoint, handler: Handler) -> Handler:
    """The one place an admin route's role is checked (`node.http.roles`)."""
    if endpoint.public:
        return handler
    area = area_of(endpoint.method, endpoint.path)

    async def permitted(request: web.Request) -> web.StreamResponse:
        permits(current_operator(request).role, area)
        return await handler(request)

    return permitted


def _scoped(endpoint: Endpoint, handler: Handler) -> Handler:
    """The one place a client route's scope is checked (`tests/node/http/test_scopes.py`)."""
    scope = endpoint.scope
    if scope is None:
        return handler

    async def scoped(request: web.Request) -> web.StreamResponse:
        require_scope(current_caller(request), scope)
        return await handler(request)

    return scoped


def build_admin_app(storage, clock: Clock, directory: Directory, *, extra: Sequence[Endpoint] = (),
                    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                    on_tokens_changed: Callable[[], None] = lambda: None,
                    on_private_deleted: Callable[[], None] = lambda: None,
                    on_private_added: Callable[[], None] = lambda: None) -> web.Application:
    service = AdminService(storage, clock, directory, on_tokens_changed=on_tokens_changed,
                           on_private_deleted=on_private_deleted, on_private_added=on_private_added)
    endpoints = [*admin_endpoints(service), *operator_endpoints(storage, clock, on_tokens_changed=on_tokens_changed),
                 *app_endpoints(storage, clock, directory, on_changed=on_tokens_changed), *extra]
    return _app("Agent Network admin API", endpoints, admin_authenticator(storage), max_body_bytes, listener="admin")


def build_client_app(storage, clock: Clock, directory: Directory, *, service: ClientService,
                     limiter: PostRateLimiter, extra: Sequence[Endpoint] = (),
                     max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                     tokens_version: Callable[[], int] | None = None) -> web.Application:
    """`tokens_version` turns on the token cache (`node.http.auth.principal_authenticator`)."""
    # Any request with a token may carry Act-As, and be refused for it (node.workspace.apps).
    endpoints = [e if e.public else dataclasses.replace(e, headers=(*e.headers, ACT_AS_HEADER),
                                                        errors=tuple(dict.fromkeys((*e.errors, 400, 403))))
                 for e in (*client_endpoints(service, directory, limiter), *resource_metadata_endpoints(), *extra)]
    authenticate = principal_authenticator(storage, clock, tokens_version=tokens_version)
    app = _app("Agent Network client API", endpoints, authenticate, max_body_bytes, listener="client",
               resolve=act_as_resolver(storage))

    async def rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
        """Every answer to a token says where its post budget stands (the stream's too); a 401
        says where to learn how to get one (RFC 9728: what remote MCP hosts look for)."""
        caller = caller_or_none(request)
        if caller is not None:
            response.headers.update(limiter.headers(caller.token_id))
        elif response.status == 401:
            response.headers["WWW-Authenticate"] = challenge(request)

    app.on_response_prepare.append(rate_limit_headers)
    return app
