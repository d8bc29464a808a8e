"""Becoming peers through a network invite, and blocking.

Peering is default-deny. A host's operator invites a company by server name; the host sends
the invite (with its endpoint and key) to the invitee, which only stores it as pending. The
invitee's operator compares the host's key fingerprint out of band and accepts: the invitee
pins the host's key and answers the host with its own endpoint and key, which the host pins
in turn, and the host admits the company to the network. The invite id is a 128-bit secret
that only the invitee's verified endpoint ever received, so only it can accept. Invites expire.

A pinned key of a known peer always wins over a key offered in a body: an invite or accept
"from" a known server signed with any other key is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from federation.errors import RuleViolation
from federation.event_content import MemberAdmitted
from federation.identifiers import ParticipantId, validate_server_name
from federation.keys import VerifyKey
from federation.peering_messages import AcceptMessage, DeclineMessage, InviteMessage, KeyRef
from node.catch_up import CatchUpWorker
from node.clock import Clock
from node.delivery import DeliveryWorker
from node.errors import Blocked, Conflict, Forbidden, Gone, InvalidRequest, NotFoundError, TooManyRequests
from node.federation_client import PeerClient
from node.federation_engine import FederationEngine
from storage.errors import NotFound
from storage.network.peers import Invite
from storage.storage import NetworkTransaction, Storage

__all__ = ["INVITE_TTL_MS", "PeeringService", "new_invite_id", "operator_of"]

# Three days: long enough for the invitee's operator to check the fingerprint with the host's.
INVITE_TTL_MS = 3 * 24 * 3600 * 1000
# Pending invites one server may leave with us; more is noise or abuse.
MAX_PENDING_INVITES_PER_SERVER = 20


def operator_of(server: str) -> ParticipantId:
    return ParticipantId("operator", "admin", server)


def new_invite_id() -> str:
    """128 random bits as hex: never starts with "-", so `agentnet invite accept ID` cannot
    take an id for an option (a url-safe token starts with one, one time in 64)."""
    return secrets.token_hex(16)


class PeeringService:
    def __init__(self, storage: Storage, engine: FederationEngine, client: PeerClient, clock: Clock,
                 delivery: DeliveryWorker, catch_up: CatchUpWorker, *, endpoint: str) -> None:
        self._storage = storage
        self._engine = engine
        self._client = client
        self._clock = clock
        self._delivery = delivery
        self._catch_up = catch_up
        self._endpoint = endpoint

    @property
    def _server(self) -> str:
        return self._engine.server

    def _own_key(self) -> KeyRef:
        key = self._engine.keys.signing_key.verify_key
        return KeyRef(key_id=key.key_id, public_key=key.to_base64())

    # As host

    async def invite(self, network_name: str, server: str, endpoint: str | None, *, actor: str) -> Invite:
        server = validate_server_name(server)
        if server == self._server:
            raise InvalidRequest("a node cannot invite itself", [{"field": "server", "location": "body",
                                                                  "message": "this is our own server name"}])
        endpoint = (endpoint or f"https://{server}").rstrip("/")
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            network = await tx.networks.get(network_name)
            if network.host != self._server:
                raise Forbidden(f"only the host ({network.host}) invites companies to {network_name}")
            if network.closed:
                raise Forbidden(f"{network_name} is closed")
            peer = await tx.peers.find(server)
            if peer is not None and peer.status == "blocked":
                raise Blocked(f"{server} is blocked on this node")
            if (await tx.networks.members(network.id)).get(server) == "member":
                raise Conflict(f"{server} is already a member of {network_name}")
        invite = Invite(
            id=new_invite_id(), direction="outgoing", network=network_name, host=self._server,
            title=network.title, server=server, endpoint=endpoint, key_id="", public_key=b"",
            status="pending", created_at=now, expires_at=now + INVITE_TTL_MS, updated_at=now,
        )
        message = InviteMessage(invite_id=invite.id, network=network_name, title=network.title, host=self._server,
                                endpoint=self._endpoint, key=self._own_key(), expires_at=invite.expires_at)
        await self._client.call("POST", endpoint, server, "/invites", message.model_dump())
        async with self._storage.transaction() as tx:
            await tx.peers.add_invite(invite)
            await tx.audit.record(actor=actor, action="network.invite", target=f"{network_name}:{server}", now=now,
                                  detail={"invite": invite.id[:6]})
        return invite

    async def receive_accept(self, origin: str, invite_id: str, message: AcceptMessage) -> dict:
        """From the invitee: pin its key, make it a peer, admit it to the network."""
        now = self._clock.now_ms()
        key = _offered_key(message.key)
        async with self._storage.network_transaction() as tx:
            invite = await self._own_invite(tx, invite_id, origin)
            if invite.status == "pending":
                if _expired(invite, now):
                    raise Gone("the invite has expired; ask the host for a new one")
                await self._pin(tx, origin, key, message.endpoint, now)
                await tx.peers.set_invite_status(invite_id, "accepted", now=now)
                await self._engine.author(tx, invite.network, thread=None, sender=operator_of(self._server),
                                          content=MemberAdmitted(server=origin, key_id=key.key_id,
                                                                 public_key=key.to_base64(),
                                                                 endpoint=message.endpoint))
            elif invite.status != "accepted":
                raise Gone(f"the invite was {invite.status}")
            network = await tx.networks.get(invite.network)
        self._delivery.wake()
        return {"network": network.name, "head": network.head_seq}

    async def receive_decline(self, origin: str, invite_id: str) -> dict:
        async with self._storage.network_transaction() as tx:
            invite = await self._own_invite(tx, invite_id, origin)
            if invite.status == "pending":
                await tx.peers.set_invite_status(invite_id, "declined", now=self._clock.now_ms())
                return {"status": "declined"}
        return {"status": invite.status}  # an accepted invite stays accepted

    async def _own_invite(self, tx: NetworkTransaction, invite_id: str, origin: str) -> Invite:
        try:
            invite = await tx.peers.invite(invite_id)
        except NotFound:
            invite = None
        if invite is None or invite.direction != "outgoing" or invite.server != origin:
            raise NotFoundError("no such invite for this server")
        return invite

    # As invitee

    async def receive_invite(self, origin: str, message: InviteMessage) -> dict:
        if message.host != origin:
            raise Forbidden("an invite comes from the network's host")
        now = self._clock.now_ms()
        if message.expires_at <= now:
            raise Gone("the invite has already expired")
        key = _offered_key(message.key)
        async with self._storage.network_transaction() as tx:
            try:
                existing = await tx.peers.invite(message.invite_id)
            except NotFound:
                existing = None
            if existing is not None:
                if existing.server != origin:
                    raise Conflict("invite id already used")
                return {"status": existing.status}
            if await tx.peers.count_pending_incoming(origin) >= MAX_PENDING_INVITES_PER_SERVER:
                raise TooManyRequests(f"{origin} already has {MAX_PENDING_INVITES_PER_SERVER} pending invites here",
                                      retry_after_s=3600)
            if await tx.networks.find(message.network) is not None:
                raise Conflict(f"this node already holds a network named {message.network}")
            await tx.peers.add_invite(Invite(
                id=message.invite_id, direction="incoming", network=message.network, host=origin,
                title=message.title, server=origin, endpoint=message.endpoint, key_id=key.key_id,
                public_key=key.raw, status="pending", created_at=now, expires_at=message.expires_at, updated_at=now,
            ))
        return {"status": "pending"}

    async def accept(self, invite_id: str, *, actor: str) -> Invite:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            invite = await self._incoming(tx, invite_id)
            if _expired(invite, now):
                raise Gone("the invite has expired; ask the host for a new one")
            if await tx.networks.find(invite.network) is not None:
                raise Conflict(f"this node already holds a network named {invite.network}")
            peer = await tx.peers.find(invite.server)
            if peer is not None and peer.status == "blocked":
                raise Blocked(f"{invite.server} is blocked on this node")
        # Pin the host and hold the network before asking, so the host's first fan-out finds both;
        # if the host cannot be reached, all of it is undone (a peer or key that was there before stays).
        host_key = VerifyKey(invite.public_key)
        async with self._storage.network_transaction() as tx:
            was_peer = await tx.peers.find(invite.server) is not None
            had_key = host_key.key_id in {k.key_id for k in await tx.peers.keys(invite.server)}
            await self._pin(tx, invite.server, host_key, invite.endpoint, now)
            await tx.networks.create(host=invite.host, name=invite.network, title=invite.title,
                                     history_visible=True, now=now)
        try:
            await self._client.call("POST", invite.endpoint, invite.server, f"/invites/{invite_id}/accept",
                                    AcceptMessage(endpoint=self._endpoint, key=self._own_key()).model_dump())
        except Exception:
            async with self._storage.network_transaction() as tx:
                await tx.networks.delete((await tx.networks.get(invite.network)).id)
                if not had_key:
                    await tx.peers.unpin_key(invite.server, host_key.key_id)
                if not was_peer:
                    await tx.peers.forget(invite.server)
            raise
        async with self._storage.transaction() as tx:
            await tx.peers.set_invite_status(invite_id, "accepted", now=now)
            await tx.audit.record(actor=actor, action="invite.accept", target=f"{invite.network}:{invite.host}",
                                  now=now, detail={"fingerprint": VerifyKey(invite.public_key).fingerprint})
        self._catch_up.request(invite.network)
        return await self._reload(invite_id)

    async def decline(self, invite_id: str, *, actor: str) -> Invite:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            invite = await self._incoming(tx, invite_id)
            await tx.peers.set_invite_status(invite_id, "declined", now=now)
            await tx.audit.record(actor=actor, action="invite.decline", target=f"{invite.network}:{invite.host}",
                                  now=now)
        try:  # telling the host is a courtesy; the decline stands either way
            await self._client.call("POST", invite.endpoint, invite.server, f"/invites/{invite_id}/decline",
                                    DeclineMessage(key=self._own_key()).model_dump())
        except Exception:  # noqa: BLE001 - PeerUnreachable/PeerRefused: nothing more to do
            pass
        return await self._reload(invite_id)

    async def invites(self) -> list[Invite]:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            found = await tx.peers.invites()
        return [_with_expiry(i, now) for i in found]

    async def _incoming(self, tx: NetworkTransaction, invite_id: str) -> Invite:
        try:
            invite = await tx.peers.invite(invite_id)
        except NotFound:
            raise NotFoundError("no such invite") from None
        if invite.direction != "incoming":
            raise NotFoundError("no such invite")
        if invite.status != "pending":
            raise Conflict(f"the invite is already {invite.status}")
        return invite

    async def _reload(self, invite_id: str) -> Invite:
        async with self._storage.network_transaction() as tx:
            return await tx.peers.invite(invite_id)

    async def _pin(self, tx: NetworkTransaction, server: str, key: VerifyKey, endpoint: str, now: int) -> None:
        pinned = await tx.peers.keys(server)
        if pinned and key.key_id not in {k.key_id for k in pinned}:
            raise RuleViolation("key_mismatch", f"{server} is already pinned with other keys")
        await tx.peers.pin_key(server, key_id=key.key_id, public_key=key.raw, valid_until=None, now=now)
        await tx.peers.upsert(server, status="accepted", endpoint=endpoint, now=now)

    # Blocking

    async def set_blocked(self, server: str, blocked: bool, *, actor: str) -> None:
        server = validate_server_name(server)
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            peer = await tx.peers.find(server)
            if blocked:
                await tx.peers.upsert(server, status="blocked", endpoint=None, now=now)
                await tx.outbox.cancel(server, error="blocked by an operator", now=now)
            elif peer is not None and peer.status == "blocked":
                # Back to a peer only if it was one (an operator exchanged endpoints with it);
                # a key vouched for by a host never makes a peer.
                status = "accepted" if peer.endpoint else "unknown"
                await tx.peers.upsert(server, status=status, endpoint=None, now=now)
            await tx.audit.record(actor=actor, action="peer.block" if blocked else "peer.unblock", target=server,
                                  now=now)


def _offered_key(ref: KeyRef) -> VerifyKey:
    try:
        return ref.verify_key()
    except ValueError as e:
        raise InvalidRequest(f"key: {e}", [{"field": "key", "location": "body", "message": str(e)}]) from None


def _expired(invite: Invite, now: int) -> bool:
    return invite.expires_at <= now


def _with_expiry(invite: Invite, now: int) -> Invite:
    if invite.status == "pending" and _expired(invite, now):
        return replace(invite, status="expired")
    return invite
