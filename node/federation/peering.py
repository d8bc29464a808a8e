"""The receiving half of peering: what the federation listener does with a host's invite and
with an invitee's accept or decline. The operator's half (invite, accept, decline, block) is
`node.networks.partners`.

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

import logging
import secrets
from collections.abc import Callable

from federation.errors import RuleViolation
from federation.event_content import MemberAdmitted
from federation.identifiers import ParticipantId
from federation.keys import VerifyKey
from federation.peering_messages import AcceptMessage, InviteMessage, KeyRef
from node.basics.clock import Clock
from node.basics.errors import Conflict, Forbidden, Gone, InvalidRequest, NotFoundError, TooManyRequests
from node.federation.delivery import DeliveryWorker
from node.federation.engine import FederationEngine
from node.federation.policy import PolicyRefused, node_policy
from storage.errors import NotFound
from storage.network.peers import Invite
from storage.network.transaction import NetworkStore, NetworkTransaction

__all__ = ["INVITE_TTL_MS", "PeeringReceiver", "has_expired", "new_invite_id", "offered_key", "operator_of", "pin_peer"]

log = logging.getLogger(__name__)

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


class PeeringReceiver:
    def __init__(self, storage: NetworkStore, engine: FederationEngine, clock: Clock,
                 delivery: DeliveryWorker) -> None:
        self._storage = storage
        self._engine = engine
        self._clock = clock
        self._delivery = delivery
        # Set by the node's assembly: accept an invite now, as the operator would (the operator's
        # half lives in node.networks, which this path does not import).
        self.on_auto_accept: Callable[[str], None] = lambda invite_id: None

    @property
    def _server(self) -> str:
        return self._engine.server

    # As host

    async def receive_accept(self, origin: str, invite_id: str, message: AcceptMessage) -> dict:
        """From the invitee: pin its key, make it a peer, admit it to the network."""
        now = self._clock.now_ms()
        key = offered_key(message.key)
        async with self._storage.network_transaction() as tx:
            invite = await self._own_invite(tx, invite_id, origin)
            if invite.status == "pending":
                if has_expired(invite, now):
                    raise Gone("the invite has expired; ask the host for a new one")
                await pin_peer(tx, origin, key, message.endpoint, now)
                await tx.peers.set_invite_status(invite_id, "accepted", now=now)
                await self._engine.author(tx, invite.network, thread=None, sender=operator_of(self._server),
                                          content=MemberAdmitted(server=origin, key_id=key.key_id,
                                                                 public_key=key.to_base64(),
                                                                 endpoint=message.endpoint))
                await tx.audit.record(actor=origin, action="invite.accepted", target=f"{invite.network}:{origin}",
                                      now=now, network=invite.network, partner=origin,
                                      detail={"invite": invite_id[:6], "fingerprint": key.fingerprint})
            elif invite.status != "accepted":
                raise Gone(f"the invite was {invite.status}")
            network = await tx.networks.get(invite.network)
        if invite.status == "pending":
            log.info("%s accepted the invite to %s: admitted with key %s", origin, invite.network, key.fingerprint)
        self._delivery.wake()
        return {"network": network.name, "head": network.head_seq}

    async def receive_decline(self, origin: str, invite_id: str) -> dict:
        async with self._storage.network_transaction() as tx:
            invite = await self._own_invite(tx, invite_id, origin)
            if invite.status == "pending":
                await tx.peers.set_invite_status(invite_id, "declined", now=self._clock.now_ms())
                await tx.audit.record(actor=origin, action="invite.declined", target=f"{invite.network}:{origin}",
                                      now=self._clock.now_ms(), network=invite.network, partner=origin,
                                      detail={"invite": invite_id[:6]})
                log.info("%s declined the invite to %s", origin, invite.network)
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
        key = offered_key(message.key)
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
            policy = await node_policy(tx)
            automatic = origin in policy.auto_accept
            wanted = automatic or (policy.accept_invites and origin not in policy.refuse_invites_from)
            if wanted:
                await tx.peers.add_invite(Invite(
                    id=message.invite_id, direction="incoming", network=message.network, host=origin,
                    title=message.title, server=origin, endpoint=message.endpoint, key_id=key.key_id,
                    public_key=key.raw, status="pending", created_at=now, expires_at=message.expires_at,
                    updated_at=now, history_visible=message.history_visible,
                ))
            await tx.audit.record(actor=origin, action="invite.received" if wanted else "invite.refused",
                                  target=f"{message.network}:{origin}", now=now, network=message.network,
                                  partner=origin, detail={"invite": message.invite_id[:6],
                                                          "fingerprint": key.fingerprint})
        if not wanted:
            log.info("refused an invite from %s to %s: this node's policy refuses it", origin, message.network)
            if origin in policy.refuse_invites_from:
                raise PolicyRefused("invites_refused", f"{self._server} does not accept invites from {origin}")
            raise PolicyRefused("invites_refused", f"{self._server} does not accept invites; its operator can "
                                "allow them, or list your server to be accepted automatically")
        if automatic:
            log.info("invite from %s to %s is accepted by policy (host key %s)", origin, message.network,
                     key.fingerprint)
            self.on_auto_accept(message.invite_id)
        else:
            log.info("invite from %s to %s waits for an operator (host key %s; `agentnet invites`)", origin,
                     message.network, key.fingerprint)
        return {"status": "pending"}


async def pin_peer(tx: NetworkTransaction, server: str, key: VerifyKey, endpoint: str, now: int) -> None:
    pinned = await tx.peers.keys(server)
    if pinned and key.key_id not in {k.key_id for k in pinned}:
        raise RuleViolation("key_mismatch", f"{server} is already pinned with other keys")
    await tx.peers.pin_key(server, key_id=key.key_id, public_key=key.raw, valid_until=None, now=now)
    await tx.peers.upsert(server, status="accepted", endpoint=endpoint, now=now)


def offered_key(ref: KeyRef) -> VerifyKey:
    try:
        return ref.verify_key()
    except ValueError as e:
        raise InvalidRequest(f"key: {e}", [{"field": "key", "location": "body", "message": str(e)}]) from None


def has_expired(invite: Invite, now: int) -> bool:
    return invite.expires_at <= now
