"""The federation listener: what other nodes may ask of this one, over TLS.

One middleware authenticates every request before any handler runs: it parses the signature
header, refuses blocked servers and (default-deny) servers no operator peered with, reads the
body under the route's size cap and a deadline, checks the signature against keys learned from
the origin itself (never a key some host vouched for), the destination and the clock, applies
the peer's rate limits (429 with Retry-After) and the nonce (a replay is refused), and only
then hands the handler the verified origin. Invite routes are the one exception to "pinned
keys only": a company that is not a peer yet signs with the key its small body offers (a known
peer must still use its pinned key). Nothing is parsed but the header before the origin's
standing is known, and nothing is written before authentication passes, except the nonce that
makes a replay detectable. Large bodies are parsed on a worker thread, with a bound on their
JSON values, so no request holds the event loop while it is parsed.

A transaction carries up to 100 events; each is checked on its own (`node.federation.inbound`),
and the answer lists one result per event, so one bad event never blocks the rest. A retransmitted transaction
(same origin and id) gets the stored answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from federation.canonical_json import encode_canonical
from federation.errors import UnknownKey
from federation.keys import VerifyKey
from federation.peering_messages import (
    AcceptMessage,
    DeclineMessage,
    InviteMessage,
    KeyRef,
    TransactionMessage,
)
from federation.request_signing import REPLAY_WINDOW_MS, parse_authorization, verify_request
from node.basics.clock import Clock
from node.basics.errors import (
    Blocked,
    InvalidRequest,
    NotAPeer,
    NotFoundError,
    PayloadTooLarge,
    Replayed,
    UnknownNetwork,
)
from node.basics.limits import FederationLimits
from node.basics.rate_limit import PeerRateLimiter
from node.federation.activity import ActivityMessage, ActivityRelay
from node.federation.catch_up import CATCH_UP_PAGE, CatchUpWorker
from node.federation.delivery import DeliveryWorker
from node.federation.engine import FederationEngine
from node.federation.files import FileExchange
from node.federation.halting import HaltKeeper
from node.federation.hidden_history import wires_for
from node.federation.inbound import InboundEvents
from node.federation.key_publishing import own_key_document
from node.federation.key_refresh import KeyRefresher
from node.federation.key_ring import usable_until
from node.federation.peer_client import FEDERATION_PREFIX
from node.federation.peering import PeeringReceiver
from node.federation.policy import partner_policy
from node.http.errors import error_middleware
from node.http.io import parse_body, read_raw
from storage.network.transaction import NetworkStore

__all__ = ["MAX_FEDERATION_BODY_BYTES", "build_federation_app"]


# A transaction is at most 100 events (federation.peering_messages) and this node's sender
# sends at most 1 MiB of events at a time (node.federation.delivery.MAX_BATCH_BYTES) plus one event of up
# to 64 KiB: 2 MiB leaves room for escaping and for other senders, and bounds what a peer can
# make this node read and parse in one request.
MAX_FEDERATION_BODY_BYTES = 2 * 1024 * 1024
# Invites and their answers come from servers that may not be peers yet: they are a few hundred
# bytes, and nothing larger is read from a server this node does not know.
MAX_SELF_CERTIFIED_BODY_BYTES = 64 * 1024
# JSON values per body: a full transaction of 100 events that each open a thread with 256
# participants is about 30,000; an invite is a few dozen.
MAX_TRANSACTION_VALUES = 50_000
MAX_SELF_CERTIFIED_VALUES = 200
# Bodies above this are parsed on a worker thread, so parsing never holds the event loop.
_PARSE_ON_THREAD_ABOVE = 64 * 1024
_ORIGIN = web.RequestKey("agentnet.peer.origin", str)
_BODY = web.RequestKey("agentnet.peer.body", bytes)
_TXN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PUBLIC, _SELF_CERTIFIED = "public", "self-certified"
M = TypeVar("M", bound=BaseModel)


def _auth_middleware(storage: NetworkStore, server: str, clock: Clock, refresher: KeyRefresher,
                     limiter: PeerRateLimiter):
    """Authenticate before anything is parsed: the header first, then the claimed origin's
    standing (blocked, a peer at all), then the body, read under the route's cap, then the
    signature, the peer's rate limits and the nonce."""

    @web.middleware
    async def authenticate(request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route
        kind = route.name.partition(":")[0] if route.name else None
        if kind == _PUBLIC or request.match_info.http_exception is not None:
            return await handler(request)
        sig = parse_authorization(request.headers.get("Authorization"))
        _peer, pinned = await _standing(sig.origin, kind)
        cap = MAX_SELF_CERTIFIED_BODY_BYTES if kind == _SELF_CERTIFIED else MAX_FEDERATION_BODY_BYTES
        body = await read_raw(request, cap, PayloadTooLarge)  # a late body: the connection guard's 408
        if kind == _SELF_CERTIFIED and not pinned:  # not a peer yet, by definition: the offered key
            offered = _parsed(body, _KeyBody, max_values=MAX_SELF_CERTIFIED_VALUES).key.verify_key_or_none()
            pinned = {offered.key_id: (offered, None)} if offered is not None else {}
        try:
            _verify(request, body, sig, pinned)
        except UnknownKey:
            if not await refresher.refresh(sig.origin):  # the peer may have rotated its key
                raise
            _peer, pinned = await _standing(sig.origin, kind)
            _verify(request, body, sig, pinned)
        limiter.request(sig.origin, len(body))
        now = clock.now_ms()
        async with storage.network_transaction() as tx:
            if not await tx.inbound.remember_nonce(sig.origin, sig.nonce, expires_at=now + REPLAY_WINDOW_MS):
                raise Replayed("this request was already received")
        request[_ORIGIN] = sig.origin
        request[_BODY] = body
        return await handler(request)

    async def _standing(origin: str, kind: str | None):
        """The origin's peer record and the keys learned from it (a retired key with the last
        moment it may have signed; node.federation.key_ring). Keys a host vouched for never count here."""
        async with storage.network_transaction(read_only=True) as tx:
            peer = await tx.peers.find(origin)
            if peer is not None and peer.status == "blocked":
                raise Blocked(f"{origin} is blocked by this node")
            if kind != _SELF_CERTIFIED and (peer is None or peer.status != "accepted"):
                raise NotAPeer(f"{origin} is not a peer of this node")
            pinned = {k.key_id: (VerifyKey(k.public_key), usable_until(k.valid_until))
                      for k in await tx.peers.keys(origin) if k.revoked_at is None}
        return peer, pinned

    def _verify(request: web.Request, body: bytes, sig, pinned: dict) -> None:
        def lookup(origin: str, key_id: str) -> VerifyKey:
            key, until = pinned.get(key_id, (None, None)) if origin == sig.origin else (None, None)
            if key is None:
                raise UnknownKey(f"no pinned key {key_id} for {origin}")
            if until is not None and sig.timestamp_ms > until:
                raise UnknownKey(f"key {key_id} of {origin} retired at {until}")
            return key

        verify_request(sig, method=request.method, path=request.raw_path, body=body,
                       expected_destination=server, now_ms=clock.now_ms(), lookup=lookup)

    return authenticate


def _parsed(body: bytes, model: type[M], *, max_values: int = MAX_TRANSACTION_VALUES) -> M:
    return parse_body(body, model, max_bytes=MAX_FEDERATION_BODY_BYTES, max_values=max_values)


async def _body(request: web.Request, model: type[M], *, max_values: int = MAX_SELF_CERTIFIED_VALUES) -> M:
    body = request[_BODY]
    if len(body) > _PARSE_ON_THREAD_ABOVE:
        return await asyncio.to_thread(_parsed, body, model, max_values=max_values)
    return _parsed(body, model, max_values=max_values)


class _OfferedKey(KeyRef):
    def verify_key_or_none(self) -> VerifyKey | None:
        try:
            return self.verify_key()
        except ValueError:
            return None


class _KeyBody(BaseModel):
    key: _OfferedKey


def build_federation_app(*, storage: NetworkStore, engine: FederationEngine, peering: PeeringReceiver,
                         delivery: DeliveryWorker, catch_up: CatchUpWorker, refresher: KeyRefresher,
                         halts: HaltKeeper, clock: Clock, files: FileExchange, activity: ActivityRelay,
                         limits: FederationLimits = FederationLimits(),
                         on_event: Callable[[str], None] = lambda result: None) -> web.Application:
    """`on_event` hears how each pushed event settled: accepted, duplicate or refused (metrics)."""
    limiter = PeerRateLimiter(limits)
    server = engine.server
    inbound = InboundEvents(storage, engine, refresher, halts, on_gap=catch_up.request, on_event=on_event)

    async def keys(request: web.Request) -> web.Response:
        async with storage.network_transaction() as tx:
            document = await own_key_document(tx, engine.keys.signing_key, server=server, now=clock.now_ms())
        return web.Response(body=encode_canonical(document), content_type="application/json")

    async def invite(request: web.Request) -> web.Response:
        answer = await peering.receive_invite(request[_ORIGIN], await _body(request, InviteMessage))
        return web.json_response(answer, status=202)

    async def accept(request: web.Request) -> web.Response:
        message = await _body(request, AcceptMessage)
        answer = await peering.receive_accept(request[_ORIGIN], request.match_info["invite_id"], message)
        return web.json_response(answer)

    async def decline(request: web.Request) -> web.Response:
        await _body(request, DeclineMessage)
        return web.json_response(await peering.receive_decline(request[_ORIGIN], request.match_info["invite_id"]))

    async def transaction(request: web.Request) -> web.Response:
        origin, txn_id = request[_ORIGIN], request.match_info["txn_id"]
        if not _TXN_ID.match(txn_id):
            raise InvalidRequest("transaction id is not valid", [{"field": "txn_id", "location": "path",
                                                                 "message": "1-64 of A-Z a-z 0-9 . _ -"}])
        message = await _body(request, TransactionMessage, max_values=MAX_TRANSACTION_VALUES)
        sequenced = sum(1 for wire in message.events if isinstance(wire, dict) and "seq" in wire)
        submitted = len(message.events) - sequenced
        per_minute = None
        if submitted:  # this company's own limit for the partner, as host (node.federation.policy)
            async with storage.network_transaction(read_only=True) as tx:
                per_minute = (await partner_policy(tx, origin))[0].max_events_per_minute
        limiter.events(origin, submitted=submitted, sequenced=sequenced, per_minute=per_minute)
        answer = await inbound.answer(txn_id, message.events, via=origin, now=clock.now_ms())
        return web.Response(body=answer, content_type="application/json")

    async def ping(request: web.Request) -> web.Response:
        # The peer says it is back (it pings every peer when it starts): whatever we hold for it
        # can go now. Its other requests prove only that its direction works, not ours, so they
        # wake nothing (a one-way partition would otherwise turn them into a retry storm).
        delivery.wake(request[_ORIGIN])
        return web.json_response({})

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
            wires = await wires_for(tx, network, found, origin)  # stubs where history is hidden from it
        # Stored wire forms are canonical already; splice them rather than re-encode.
        body = b'{"events":[' + b",".join(wires) + b'],"head":' + str(network.head_seq).encode() + b"}"
        return web.Response(body=body, content_type="application/json")

    async def file(request: web.Request) -> web.Response:
        m = request.match_info
        if not m["position"].isdigit() or len(m["position"]) > 1:
            raise InvalidRequest("a file's position is one digit", [{"field": "position", "location": "path",
                                                                      "message": "0-7"}])
        attachment, data = await files.serve(request[_ORIGIN], m["network"], m["event_id"], int(m["position"]))
        return web.Response(body=data, content_type=attachment.content_type)

    async def activity_changed(request: web.Request) -> web.Response:
        message = await _body(request, ActivityMessage)
        await activity.received(request[_ORIGIN], request.match_info["network"], message)
        return web.json_response({})

    app = web.Application(client_max_size=MAX_FEDERATION_BODY_BYTES, middlewares=[
        error_middleware, _auth_middleware(storage, server, clock, refresher, limiter),
    ])
    p = FEDERATION_PREFIX
    app.router.add_get(f"{p}/keys", keys, name=f"{_PUBLIC}:keys")
    app.router.add_post(f"{p}/invites", invite, name=f"{_SELF_CERTIFIED}:invite")
    app.router.add_post(f"{p}/invites/{{invite_id}}/accept", accept, name=f"{_SELF_CERTIFIED}:accept")
    app.router.add_post(f"{p}/invites/{{invite_id}}/decline", decline, name=f"{_SELF_CERTIFIED}:decline")
    app.router.add_put(f"{p}/transactions/{{txn_id}}", transaction, name="peer:transaction")
    app.router.add_get(f"{p}/networks/{{network}}/events", events, name="peer:events")
    app.router.add_get(f"{p}/servers/{{server}}/keys", relay_keys, name="peer:relay-keys")
    app.router.add_get(f"{p}/networks/{{network}}/files/{{event_id}}/{{position}}", file, name="peer:file")
    app.router.add_post(f"{p}/networks/{{network}}/activity", activity_changed, name="peer:activity")
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

