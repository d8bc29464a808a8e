"""Authentication at the edge: one middleware per listener turns a bearer token into a
verified identity on the request; handlers read it and never parse headers themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from node.basics.clock import Clock
from node.basics.errors import InsufficientScope, Unauthorized, WrongTokenKind
from node.workspace.tokens import hash_token
from storage.private.principals import Principal
from storage.storage import Storage

__all__ = [
    "DEFAULT_SCOPES",
    "SCOPES",
    "Caller",
    "Operator",
    "admin_authenticator",
    "auth_middleware",
    "authenticate_digest",
    "caller_or_none",
    "current_admin",
    "current_caller",
    "current_operator",
    "current_principal",
    "principal_authenticator",
    "require_scope",
]

# What a principal token may be allowed to do. `read` covers threads, the event stream and
# "events since"; `post` posting; `knowledge:read` knowledge search; `webhooks` managing the
# caller's own webhook endpoints; `threads` opening shared threads and adding participants to
# them, which names people of other companies: only when the operator grants it.
SCOPES = ("read", "post", "knowledge:read", "webhooks", "threads")
DEFAULT_SCOPES = ("read", "post", "knowledge:read", "webhooks")

# Either the admin actor name (admin listener) or a Principal (client listener).
_IDENTITY = web.RequestKey("agentnet.identity", object)
# Tokens are ~50 characters; anything far longer is not one of ours and is not hashed.
_MAX_TOKEN_CHARS = 256

Authenticator = Callable[[str], Awaitable[Any | None]]

# How long a verified client token is trusted without reading the database again: one second
# bounds how late a revocation made by another node process takes effect (one made through
# this process's admin API takes effect at once).
TOKEN_CACHE_MS = 1000
# Active tokens of one node; past this the cache starts over rather than grow.
_MAX_CACHED_TOKENS = 10_000


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_CHARS:
        raise Unauthorized("a bearer token is required")
    return token


# Token prefixes (`node.workspace.tokens`), and what the listeners take.
_KINDS = {"anadm_": "the admin token", "anagt_": "an agent's token", "anper_": "a person's token",
          "anapp_": "an application's token"}
_TAKES = {"admin": ("anadm_",), "client": ("anagt_", "anper_", "anapp_")}
_WHERE = {"admin": "the admin token (anadm_..., in DATA_DIR/admin.token)",
          "client": "an agent's, person's or application's token (anagt_..., anper_... or anapp_...)"}


def auth_middleware(authenticate: Authenticator, public_paths: Collection[str], *, listener: str,
                    resolve: Callable[[web.Request, Any], Awaitable[Any]] | None = None,
                    own_auth: str | None = None):
    """`listener` ("admin" or "client") names the kind of token it takes, so a token of the other
    kind is refused as that, not as merely invalid. `resolve` turns the identity into the one
    the request acts as (an application acting as one of its agents: `node.workspace.apps`).
    `own_auth`: a path prefix whose routes authenticate by themselves (the web app's pages, by
    their session cookie: `node.web.pages`)."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        mine = own_auth is not None and (request.path == own_auth or request.path.startswith(own_auth + "/"))
        if request.path not in public_paths and not mine:
            token = _bearer(request)
            kind = next((k for k in _KINDS if token.startswith(k)), None)
            if kind is not None and kind not in _TAKES[listener]:
                raise WrongTokenKind(f"this is {_KINDS[kind]}; the {listener} listener takes {_WHERE[listener]}")
            identity = await authenticate(token)
            if identity is None:
                raise Unauthorized("the bearer token is not valid (revoked, expired, or never issued)")
            request[_IDENTITY] = identity if resolve is None else await resolve(request, identity)
        return await handler(request)

    return middleware


@dataclass(frozen=True, slots=True)
class Operator:
    """Who holds an admin token: the actor name written to the audit log (`admin:NAME` for a
    named operator, `admin:<token prefix>` for an owner token) and the role
    (`node.http.roles`)."""

    actor: str
    role: str


def admin_authenticator(storage: Storage) -> Authenticator:
    async def authenticate(token: str) -> Operator | None:
        async with storage.transaction() as tx:
            record = await tx.admin_tokens.live(hash_token(token))
        if record is None:
            return None
        return Operator(f"admin:{record.name or record.prefix}", record.role)

    return authenticate


@dataclass(frozen=True, slots=True)
class Caller:
    """A principal as authenticated by one token; open streams re-check `token_hash` (a
    digest, never the token) so a revoked or expired token ends them. An application's token
    acting as an agent gives the agent as `principal`, the application as `app` and the
    application token's scopes."""

    principal: Principal
    token_id: int
    scopes: frozenset[str]
    expires_at: int | None
    token_hash: str
    app: Principal | None = None  # the application acting as `principal` (node.workspace.apps)


def principal_authenticator(storage: Storage, clock: Clock, *,
                            tokens_version: Callable[[], int] | None = None) -> Callable[[str], Awaitable[Caller | None]]:
    """With `tokens_version` (bumped by every token change through this process's admin API),
    a verified caller is reused for up to TOKEN_CACHE_MS instead of reading the database on
    every request: a change made here ends every cached entry at once; one made by another
    node process on the same PostgreSQL is seen within TOKEN_CACHE_MS, as open streams see it
    within their recheck interval. Refused tokens are never cached, so junk cannot fill it."""
    if tokens_version is None:
        async def authenticate(token: str) -> Caller | None:
            return await authenticate_digest(storage, clock, hash_token(token))

        return authenticate
    cache: dict[str, tuple[int, int, Caller]] = {}  # token hash -> (tokens version, checked at, caller)

    async def authenticate_cached(token: str) -> Caller | None:
        digest, now, version = hash_token(token), clock.now_ms(), tokens_version()
        hit = cache.get(digest)
        if hit is not None and hit[0] == version and now - hit[1] < TOKEN_CACHE_MS and (
                hit[2].expires_at is None or hit[2].expires_at > now):
            return hit[2]
        caller = await authenticate_digest(storage, clock, digest)
        if caller is None:
            cache.pop(digest, None)
            return None
        if len(cache) >= _MAX_CACHED_TOKENS:
            cache.clear()
        cache[digest] = (version, now, caller)
        return caller

    return authenticate_cached


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


def current_operator(request: web.Request) -> Operator:
    identity = request[_IDENTITY]
    assert isinstance(identity, Operator), "an admin route behind the admin authenticator"
    return identity


def current_admin(request: web.Request) -> str:
    """The actor name of the operator calling an admin route, for the audit log."""
    return current_operator(request).actor


def current_caller(request: web.Request) -> Caller:
    identity = request[_IDENTITY]
    assert isinstance(identity, Caller), "a client route behind the principal authenticator"
    return identity


def caller_or_none(request: web.Request) -> Caller | None:
    """The client caller, if the request was authenticated as one (signals, logging)."""
    identity = request.get(_IDENTITY)
    return identity if isinstance(identity, Caller) else None


def current_principal(request: web.Request) -> Principal:
    return current_caller(request).principal
