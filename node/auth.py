"""Authentication at the edge: one middleware per listener turns a bearer token into a
verified identity on the request; handlers read it and never parse headers themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import web

from node.errors import Unauthorized
from node.tokens import hash_token
from storage.principals import Principal
from storage.storage import Storage

__all__ = [
    "admin_authenticator", "auth_middleware", "current_admin", "current_principal",
    "principal_authenticator",
]

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


def principal_authenticator(storage: Storage) -> Authenticator:
    async def authenticate(token: str) -> Principal | None:
        async with storage.transaction() as tx:
            return await tx.tokens.principal_for(hash_token(token))

    return authenticate


def current_admin(request: web.Request) -> str:
    return request[_IDENTITY]


def current_principal(request: web.Request) -> Principal:
    return request[_IDENTITY]
