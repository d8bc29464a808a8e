"""The federation listener: what other nodes may ask of this one, over TLS.

One middleware authenticates every request before any handler runs: it parses the signature
header, refuses blocked servers and (default-deny) servers no operator peered with, checks the
signature against pinned keys, the destination, the clock and the nonce (a replay is refused),
and only then hands the handler the verified origin. Invite routes are the one exception to
"pinned keys only": a company that is not a peer yet signs with the key its body offers (a
known peer must still use its pinned key). Nothing is written before authentication passes,
except the nonce that makes a replay detectable.

A transaction carries up to 100 events; each is checked on its own (`node.inbound_events`),
and the answer lists one result per event, so one bad event never blocks the rest. A retransmitted transaction
(same origin and id) gets the stored answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from federation.canonical_json import encode_canonical
from federation.errors import UnknownKey
from federation.keys import VerifyKey
from federation.peering_messages import (
    AcceptMessage, DeclineMessage, InviteMessage, KeyRef, TransactionMessage,
)
from federation.request_signing import REPLAY_WINDOW_MS, parse_authorization, verify_request
from node.catch_up import CATCH_UP_PAGE, CatchUpWorker
from node.clock import Clock
from node.delivery import DeliveryWorker
from node.errors import (
    Blocked, InvalidRequest, NotAPeer, NotFoundError, Replayed, UnknownNetwork,
)
from node.federation_client import FEDERATION_PREFIX
from node.federation_engine import FederationEngine
from node.http_errors import error_middleware
from node.http_io import parse_body
from node.inbound_events import InboundEvents
from node.key_publishing import own_key_document
from node.key_refresh import KeyRefresher
from node.peering import PeeringService
from storage.storage import Storage

__all__ = ["MAX_FEDERATION_BODY_BYTES", "build_federation_app"]


# 100 events of up to 64 KiB, with room for the envelope: a full transaction fits.
MAX_FEDERATION_BODY_BYTES = 8 * 1024 * 1024
_ORIGIN = web.RequestKey("agentnet.peer.origin", str)
_BODY = web.RequestKey("agentnet.peer.body", bytes)
_TXN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PUBLIC, _SELF_CERTIFIED = "public", "self-certified"
M = TypeVar("M", bound=BaseModel)

def _auth_middleware(storage: Storage, server: str, clock: Clock, wake: Callable[[str], None],
                     refresher: KeyRefresher):
    @web.middleware
    async def authenticate(request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route
        kind = route.name.partition(":")[0] if route.name else None
        if kind == _PUBLIC or request.match_info.http_exception is not None:
            return await handler(request)
        body = await request.read()
        sig = parse_authorization(request.headers.get("Authorization"))
        try:
            peer = await _verify(request, body, sig, kind)
        except UnknownKey:
            if not await refresher.refresh(sig.origin):  # the peer may have rotated its key
                raise
            peer = await _verify(request, body, sig, kind)
        request[_ORIGIN] = sig.origin
        request[_BODY] = body
        if peer is not None and peer.status == "accepted":
            wake(sig.origin)  # it is up: whatever we hold for it can go now
        return await handler(request)

    async def _verify(request: web.Request, body: bytes, sig, kind: str | None):
        now = clock.now_ms()
        async with storage.network_transaction() as tx:
            peer = await tx.peers.find(sig.origin)
            if peer is not None and peer.status == "blocked":
                raise Blocked(f"{sig.origin} is blocked by this node")
            pinned = {k.key_id: VerifyKey(k.public_key) for k in await tx.peers.keys(sig.origin) if k.revoked_at is None}
            if kind == _SELF_CERTIFIED:  # invites and answers: not a peer yet, by definition
                if not pinned:
                    offered = _parsed(body, _KeyBody).key.verify_key_or_none()
                    pinned = {offered.key_id: offered} if offered is not None else {}
            elif peer is None or peer.status != "accepted":
                raise NotAPeer(f"{sig.origin} is not a peer of this node")

            def lookup(origin: str, key_id: str) -> VerifyKey:
                if origin != sig.origin or key_id not in pinned:
                    raise UnknownKey(f"no pinned key {key_id} for {origin}")
                return pinned[key_id]

            verify_request(sig, method=request.method, path=request.raw_path, body=body,
                           expected_destination=server, now_ms=now, lookup=lookup)
            if not await tx.inbound.remember_nonce(sig.origin, sig.nonce, expires_at=now + REPLAY_WINDOW_MS):
                raise Replayed("this request was already received")
        return peer

    return authenticate


def _parsed(body: bytes, model: type[M]) -> M:
    return parse_body(body, model, max_bytes=MAX_FEDERATION_BODY_BYTES)


def _body(request: web.Request, model: type[M]) -> M:
    return _parsed(request[_BODY], model)


class _OfferedKey(KeyRef):
    def verify_key_or_none(self) -> VerifyKey | None:
        try:
            return self.verify_key()
        except ValueError:
            return None


class _KeyBody(BaseModel):
    key: _OfferedKey


def build_federation_app(*, storage: Storage, engine: FederationEngine, peering: PeeringService,
                         delivery: DeliveryWorker, catch_up: CatchUpWorker, refresher: KeyRefresher,
                         clock: Clock, on_event: Callable[[str], None] = lambda result: None) -> web.Application:
    """`on_event` hears how each pushed event settled: accepted, duplicate or refused (metrics)."""
    server = engine.server
    inbound = InboundEvents(storage, engine, refresher, on_gap=catch_up.request, on_event=on_event)

    async def keys(request: web.Request) -> web.Response:
        async with storage.network_transaction() as tx:
            document = await own_key_document(tx, engine.keys.signing_key, server=server, now=clock.now_ms())
        return web.Response(body=encode_canonical(document), content_type="application/json")

    async def invite(request: web.Request) -> web.Response:
        answer = await peering.receive_invite(request[_ORIGIN], _body(request, InviteMessage))
        return web.json_response(answer, status=202)

    async def accept(request: web.Request) -> web.Response:
        message = _body(request, AcceptMessage)
        answer = await peering.receive_accept(request[_ORIGIN], request.match_info["invite_id"], message)
        return web.json_response(answer)

    async def decline(request: web.Request) -> web.Response:
        _body(request, DeclineMessage)
        return web.json_response(await peering.receive_decline(request[_ORIGIN], request.match_info["invite_id"]))

    async def transaction(request: web.Request) -> web.Response:
        origin, txn_id = request[_ORIGIN], request.match_info["txn_id"]
        if not _TXN_ID.match(txn_id):
            raise InvalidRequest("transaction id is not valid", [{"field": "txn_id", "location": "path",
                                                                 "message": "1-64 of A-Z a-z 0-9 . _ -"}])
        message = _body(request, TransactionMessage)
        answer = await inbound.answer(txn_id, message.events, via=origin, now=clock.now_ms())
        return web.Response(body=answer, content_type="application/json")

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})  # the middleware already woke our sender for the caller

    async def relay_keys(request: web.Request) -> web.Response:
        document = await refresher.relayable(request.match_info["server"])
        if document is None:
            raise NotFoundError(f"this node holds no key document of {request.match_info['server']}")
        return web.Response(body=document, content_type="application/json")

    async def events(request: web.Request) -> web.Response:
        origin, name = request[_ORIGIN], request.match_info["network"]
        after, limit = _page(request)
        async with storage.network_transaction() as tx:
            network = await tx.networks.find(name)
            if network is None or network.host != server:
                raise UnknownNetwork(f"this node hosts no network {name!r}")
            if (await tx.networks.members(network.id)).get(origin) != "member":
                raise NotAPeer(f"{origin} is not a member of {name}")
            found = await tx.events.after(network.id, after, limit=limit)
        # Stored wire forms are canonical already; splice them rather than re-encode.
        body = b'{"events":[' + b",".join(e.wire for e in found) + b'],"head":' + str(network.head_seq).encode() + b"}"
        return web.Response(body=body, content_type="application/json")

    app = web.Application(client_max_size=MAX_FEDERATION_BODY_BYTES, middlewares=[
        error_middleware, _auth_middleware(storage, server, clock, delivery.wake, refresher),
    ])
    p = FEDERATION_PREFIX
    app.router.add_get(f"{p}/keys", keys, name=f"{_PUBLIC}:keys")
    app.router.add_post(f"{p}/invites", invite, name=f"{_SELF_CERTIFIED}:invite")
    app.router.add_post(f"{p}/invites/{{invite_id}}/accept", accept, name=f"{_SELF_CERTIFIED}:accept")
    app.router.add_post(f"{p}/invites/{{invite_id}}/decline", decline, name=f"{_SELF_CERTIFIED}:decline")
    app.router.add_put(f"{p}/transactions/{{txn_id}}", transaction, name="peer:transaction")
    app.router.add_get(f"{p}/networks/{{network}}/events", events, name="peer:events")
    app.router.add_get(f"{p}/servers/{{server}}/keys", relay_keys, name="peer:relay-keys")
    app.router.add_post(f"{p}/ping", ping, name="peer:ping")
    return app


def _page(request: web.Request) -> tuple[int, int]:
    try:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", str(CATCH_UP_PAGE)))
    except ValueError:
        raise InvalidRequest("after and limit must be integers", [{"field": "after", "location": "query",
                                                                   "message": "not an integer"}]) from None
    if after < 0 or not 1 <= limit <= CATCH_UP_PAGE:
        raise InvalidRequest(f"need after >= 0 and 1 <= limit <= {CATCH_UP_PAGE}",
                             [{"field": "limit", "location": "query", "message": "out of range"}])
    return after, limit

