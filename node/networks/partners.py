"""The operator's half of peering: invite a company to a network, accept or decline an invite,
list invites, block and unblock a server. Each is audited. The half the federation listener
calls when another node answers is `node.federation.peering`, which says how peering works.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from federation.identifiers import validate_server_name
from federation.keys import VerifyKey
from federation.peering_messages import AcceptMessage, DeclineMessage, InviteMessage, KeyRef
from node.basics.clock import Clock
from node.basics.errors import Blocked, Conflict, Forbidden, Gone, InvalidRequest, NotFoundError
from node.federation.catch_up import CatchUpWorker
from node.federation.engine import FederationEngine
from node.federation.peer_client import PeerClient
from node.federation.peering import INVITE_TTL_MS, has_expired, new_invite_id, pin_peer
from storage.errors import NotFound
from storage.network.peers import Invite
from storage.network.transaction import NetworkTransaction
from storage.storage import Storage

__all__ = ["AUTO_ACCEPT_ACTOR", "PartnerService"]

log = logging.getLogger(__name__)

AUTO_ACCEPT_ACTOR = "policy:auto_accept"


class PartnerService:
    def __init__(self, storage: Storage, engine: FederationEngine, client: PeerClient, clock: Clock,
                 catch_up: CatchUpWorker, *, endpoint: str) -> None:
        self._storage = storage
        self._engine = engine
        self._client = client
        self._clock = clock
        self._catch_up = catch_up
        self._endpoint = endpoint
        self._tasks: set[asyncio.Task[None]] = set()

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
            history_visible=network.history_visible,
        )
        message = InviteMessage(invite_id=invite.id, network=network_name, title=network.title, host=self._server,
                                endpoint=self._endpoint, key=self._own_key(), expires_at=invite.expires_at,
                                history_visible=network.history_visible)
        # Kept before it is sent: a partner that accepts at once (its policy) finds it here.
        async with self._storage.network_transaction() as tx:
            await tx.peers.add_invite(invite)
        try:
            await self._client.call("POST", endpoint, server, "/invites", message.model_dump())
        except BaseException:
            async with self._storage.network_transaction() as tx:
                await tx.peers.delete_invite(invite.id)
            raise
        async with self._storage.transaction() as tx:
            await tx.audit.record(actor=actor, action="network.invite", target=f"{network_name}:{server}", now=now,
                                  network=network_name, partner=server, detail={"invite": invite.id[:6]})
        log.info("invited %s to %s (invite %s..., by %s)", server, network_name, invite.id[:6], actor)
        return invite

    # As invitee

    async def accept(self, invite_id: str, *, actor: str) -> Invite:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            invite = await self._incoming(tx, invite_id)
            if has_expired(invite, now):
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
            await pin_peer(tx, invite.server, host_key, invite.endpoint, now)
            # As the invite says; the chain's network.created must say the same (FederationEngine).
            await tx.networks.create(host=invite.host, name=invite.network, title=invite.title,
                                     history_visible=invite.history_visible, now=now)
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
                                  now=now, network=invite.network, partner=invite.host, detail={"fingerprint": VerifyKey(invite.public_key).fingerprint})
        self._catch_up.request(invite.network)
        log.info("accepted the invite of %s to %s and pinned its key %s (by %s)", invite.host, invite.network,
                 host_key.fingerprint, actor)
        return await self._reload(invite_id)

    def accept_later(self, invite_id: str) -> None:
        """Accept an invite the node's policy accepts without an operator, once the host has
        had its answer (the accept calls the host back). A failure is logged and audited, and
        the invite stays pending for an operator."""
        task = asyncio.get_running_loop().create_task(self._accept_by_policy(invite_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_by_policy(self, invite_id: str) -> None:
        await asyncio.sleep(0)
        try:
            await self.accept(invite_id, actor=AUTO_ACCEPT_ACTOR)
        except Exception as e:
            log.warning("could not accept invite %s... by policy: %s; it waits for an operator", invite_id[:6], e)
            async with self._storage.transaction() as tx:
                await tx.audit.record(actor=AUTO_ACCEPT_ACTOR, action="invite.accept_failed", target=invite_id[:6],
                                      now=self._clock.now_ms(), detail={"error": str(e)[:300]})

    async def decline(self, invite_id: str, *, actor: str) -> Invite:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            invite = await self._incoming(tx, invite_id)
            await tx.peers.set_invite_status(invite_id, "declined", now=now)
            await tx.audit.record(actor=actor, action="invite.decline", target=f"{invite.network}:{invite.host}",
                                  now=now, network=invite.network, partner=invite.host)
        log.info("declined the invite of %s to %s (by %s)", invite.host, invite.network, actor)
        try:  # telling the host is a courtesy; the decline stands either way
            await self._client.call("POST", invite.endpoint, invite.server, f"/invites/{invite_id}/decline",
                                    DeclineMessage(key=self._own_key()).model_dump())
        except Exception:
            pass
        return await self._reload(invite_id)

    async def withdraw(self, invite_id: str, *, actor: str) -> Invite:
        """As host: take back an invite not answered yet. The invitee's accept is then refused
        (410 `gone`, "the invite was withdrawn"); nothing reaches the network."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            invite = await self._pending(tx, invite_id, "outgoing")
            await tx.peers.set_invite_status(invite_id, "withdrawn", now=now)
            await tx.audit.record(actor=actor, action="invite.withdraw", target=f"{invite.network}:{invite.server}",
                                  now=now, network=invite.network, partner=invite.server)
        log.info("withdrew the invite of %s to %s (by %s)", invite.server, invite.network, actor)
        return await self._reload(invite_id)

    async def invites(self) -> list[Invite]:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            found = await tx.peers.invites()
        return [_with_expiry(i, now) for i in found]

    async def _incoming(self, tx: NetworkTransaction, invite_id: str) -> Invite:
        return await self._pending(tx, invite_id, "incoming")

    @staticmethod
    async def _pending(tx: NetworkTransaction, invite_id: str, direction: str) -> Invite:
        """The pending invite of that direction (404 for one of the other, 409 once answered)."""
        try:
            invite = await tx.peers.invite(invite_id)
        except NotFound:
            raise NotFoundError("no such invite") from None
        if invite.direction != direction:
            raise NotFoundError("no such invite")
        if invite.status != "pending":
            raise Conflict(f"the invite is already {invite.status}")
        return invite

    async def _reload(self, invite_id: str) -> Invite:
        async with self._storage.network_transaction() as tx:
            return await tx.peers.invite(invite_id)

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
                                  now=now, partner=server)
        log.info("%s %s (by %s)", "blocked" if blocked else "unblocked", server, actor)


def _with_expiry(invite: Invite, now: int) -> Invite:
    if invite.status == "pending" and has_expired(invite, now):
        return replace(invite, status="expired")
    return invite
