"""Authentication at the edge: one middleware per listener turns a bearer token into a
verified identity on the request; handlers read it and never parse headers themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from node.clock import Clock
from node.errors import InsufficientScope, Unauthorized
from node.tokens import hash_token
from storage.principals import Principal
from storage.storage import Storage

__all__ = [
    "SCOPES", "Caller", "admin_authenticator", "auth_middleware", "current_admin", "current_caller",
    "current_principal", "authenticate_digest", "principal_authenticator", "require_scope",
]

# What a principal token may be allowed to do. `read` covers threads, the event stream and
# "events since"; `post` posting; `knowledge:read` knowledge search; `webhooks` managing the
# caller's own webhook endpoints.
SCOPES = ("read", "post", "knowledge:read", "webhooks")

# Either the admin actor name (admin listener) or a Principal (client listener).
_IDENTITY = web.RequestKey("agentnet.identity", object)
# Tokens are ~50 characters; anything far longer is not one of ours and is not hashed.
_MAX_TOKEN_CHARS = 256

Authenticator = Callable[[str], Awaitable[Any | None]]


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_CHARS:
        raise Unauthorized("a bearer token is required")
    return token


def auth_middleware(authenticate: Authenticator, public_paths: Collection[str]):
    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.path not in public_paths:
            identity = await authenticate(_bearer(request))
            if identity is None:
                raise Unauthorized("the bearer token is not valid")
            request[_IDENTITY] = identity
        return await handler(request)

    return middleware


def admin_authenticator(storage: Storage) -> Authenticator:
    """Admin identity is the actor name written to the audit log (`admin:<token prefix>`)."""

    async def authenticate(token: str) -> str | None:
        async with storage.transaction() as tx:
            prefix = await tx.admin_tokens.prefix_of(hash_token(token))
        return None if prefix is None else f"admin:{prefix}"

    return authenticate


@dataclass(frozen=True, slots=True)
class Caller:
    """A principal as authenticated by one token; open streams re-check `token_hash` (a
    digest, never the token) so a revoked or expired token ends them."""

    principal: Principal
    token_id: int
    scopes: frozenset[str]
    expires_at: int | None
    token_hash: str


def principal_authenticator(storage: Storage, clock: Clock) -> Callable[[str], Awaitable[Caller | None]]:
    async def authenticate(token: str) -> Caller | None:
        return await authenticate_digest(storage, clock, hash_token(token))

    return authenticate


async def authenticate_digest(storage: Storage, clock: Clock, token_hash: str) -> Caller | None:
    async with storage.read_transaction() as tx:
        found = await tx.tokens.principal_for(token_hash, now=clock.now_ms())
    if found is None:
        return None
    principal, token = found
    return Caller(principal, token.id, token.scopes, token.expires_at, token_hash)


def require_scope(caller: Caller, scope: str) -> None:
    if scope not in caller.scopes:
        raise InsufficientScope(f"this token lacks the {scope!r} scope")


def current_admin(request: web.Request) -> str:
    return request[_IDENTITY]


def current_caller(request: web.Request) -> Caller:
    return request[_IDENTITY]


def current_principal(request: web.Request) -> Principal:
    return current_caller(request).principal
