"""Where events enter a network: authored here, submitted by a member, or sequenced by a host.

Every network has one host, the node that created it. The host alone gives events their
place: it checks each against the rules, numbers it with the network's next sequence number,
links it to the previous event's link hash, signs that placement, and queues it for every
member. A member never sequences; what its people and agents write is signed by the member,
kept locally as *pending*, and queued for the host. When the host's sequenced copy comes back,
the pending row gets its number, so a member's history is always the host's history.

Three entry points, each one database transaction together with its outbox rows:

- ``author``: a local participant or operator acts. On the host that is sequencing at once;
  on a member it is a pending event plus one outbox row to the host. Either way the rules run
  first (on a member, against its copy plus its own pending events), so a refusal is
  immediate and nothing is stored.
- ``accept_submission`` (host): a member's signed event. Verify the origin's signature, check
  the rules with ``via`` the submitting node, sequence, fan out.
- ``accept_sequenced`` (member): the host's copy of any event. Verify both signatures, the
  chain link and, again, the rules: a member notices a host that breaks them or rewrites its
  history. A sequence number past the next one is a gap: the event is refused as out of order
  and the member catches up from the host instead.

Re-delivery is harmless everywhere: an event id already stored is answered as a duplicate.
Fan-out goes to the members before and after the event, so a company learns of its own
removal, and nothing after it. Blocked servers get nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, replace

from federation.canonical_json import encode_canonical
from federation.errors import ChainError, RuleViolation, UnknownKey
from federation.event_content import Content, MemberAdmitted, NetworkCreated
from federation.events import Event, SignatureCheck, SignedEvent, sign_event, verify_event
from federation.identifiers import ParticipantId
from federation.keys import VerifyKey
from federation.rules import NetworkState, apply, authorize, initial_state, recipients
from federation.sequencing import (
    MAX_ORIGIN_LEAD_MS,
    ChainHead,
    SequencedEvent,
    StubEvent,
    check_chain_link,
    check_origin_ts,
    sequence_event,
    verify_sequenced,
    verify_stub,
)
from node.basics.clock import Clock
from node.basics.errors import Forbidden, KeyConflict, NetworkFrozen, OutOfOrder, UnknownNetwork
from node.federation.chain_state import STUB_TYPE, StateCache, message_lookup
from node.federation.consent import held_back
from node.federation.key_ring import KeyRing
from node.federation.policy import check_partner_event, partner_policy
from node.federation.projection import project
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkTransaction

__all__ = ["Accepted", "FederationEngine"]

# How far ahead of the clock strictly increasing origin_ts may run after a backward step;
# far inside the host's window (federation.sequencing.MAX_ORIGIN_LEAD_MS).
_MAX_DRIFT_AHEAD_MS = min(60_000, MAX_ORIGIN_LEAD_MS // 2)


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str
    seq: int | None  # None: pending at this member until the host sequences it
    duplicate: bool = False
    origin_ts: int | None = None  # set for what this call signed or sequenced


class FederationEngine:
    def __init__(self, keys: KeyRing, clock: Clock, states: StateCache,
                 on_enqueue: Callable[[list[str]], None] = lambda servers: None) -> None:
        """`on_enqueue(servers)` hears, once the transaction has committed, that rows for
        `servers` are in the outbox."""
        self.keys = keys
        self._clock = clock
        self._states = states
        self._on_enqueue = on_enqueue
        self._last_ts = 0

    @property
    def server(self) -> str:
        return self.keys.server_name

    def _origin_ts(self) -> int:
        # Strictly increasing, so two identical posts are still two events with two ids; but
        # after the clock stepped back, not dragged along ahead of it by more than a minute
        # (a host refuses what is dated too far ahead of its own clock).
        now = self._clock.now_ms()
        self._last_ts = now if self._last_ts - now > _MAX_DRIFT_AHEAD_MS else max(now, self._last_ts + 1)
        return self._last_ts

    def _host_ts(self, network: NetworkRecord) -> int:
        """The time this host gives an event it sequences: never before the last one's."""
        return max(self._clock.now_ms(), network.head_ts)

    # Authoring

    async def create_network(self, tx: NetworkTransaction, *, name: str, title: str, history_visible: bool,
                             sender: ParticipantId) -> NetworkRecord:
        ts = self._origin_ts()
        content = NetworkCreated(title=title, history_visible_to_new_members=history_visible)
        event = Event(name, None, sender, self.server, ts, content)
        network = await tx.networks.create(host=self.server, name=name, title=title,
                                           history_visible=history_visible, now=ts)
        await self._sequence(tx, network, None, sign_event(event, self.keys.signing_key))
        return await tx.networks.get(name)

    async def author(self, tx: NetworkTransaction, network_name: str, *, thread: str | None,
                     sender: ParticipantId, content: Content) -> Accepted:
        network = await self._network(tx, network_name)
        if network.frozen_at is not None and not sender.is_operator:
            raise NetworkFrozen(f"{network.name} is frozen by this company's operators: nothing of its people or "
                                "agents is sent until an operator unfreezes it")
        event = Event(network.name, thread, sender, self.server, self._origin_ts(), content)
        messages = await message_lookup(tx, network.id, event)
        if network.host == self.server:
            head = await self._states.created(tx, network)
            authorize(head, event, via=self.server, messages=messages)
            return await self._sequence(tx, network, head, sign_event(event, self.keys.signing_key))
        state = await self._states.with_pending(tx, network, via=self.server)
        if state is None:
            raise OutOfOrder(f"this node has not received the history of {network.name} yet")
        authorize(state, event, via=self.server, messages=messages)
        signed = sign_event(event, self.keys.signing_key)
        row = await tx.events.add(
            network_id=network.id, event_id=signed.event_id, seq=None, type=event.type, thread=thread,
            sender=str(sender), origin=self.server, origin_ts=event.origin_ts,
            wire=encode_canonical(signed.to_wire()), now=self._clock.now_ms(),
        )
        await self._enqueue(tx, row, {network.host})
        return Accepted(signed.event_id, None, origin_ts=event.origin_ts)

    # Receiving

    async def accept_submission(self, tx: NetworkTransaction, signed: SignedEvent, *, via: str,
                                checked: Container[SignatureCheck] = ()) -> Accepted:
        """As host: a member's signed event, to check and sequence. `checked`: signature checks
        already run and passed (`federation.signature_batches`)."""
        network = await self._network(tx, signed.event.network)
        if network.host != self.server:
            raise Forbidden(f"{self.server} does not host {network.name}")
        existing = await tx.events.find(signed.event_id)
        if existing is not None:
            return Accepted(signed.event_id, existing.seq, duplicate=True)
        origin_keys, _ = await self.keys.event_lookups(tx, network.id, signed)
        verify_event(signed, origin_keys, checked=checked)
        check_origin_ts(signed.event, self._host_ts(network))
        state = await self._states.created(tx, network)
        authorize(state, signed.event, via=via, messages=await message_lookup(tx, network.id, signed.event))
        if signed.event.origin != self.server:  # this company's own rules for what partners send
            policy, _ = await partner_policy(tx, signed.event.origin)
            check_partner_event(policy, signed.event)
        return await self._sequence(tx, network, state, signed)

    async def accept_sequenced(self, tx: NetworkTransaction, seqd: SequencedEvent, *, via: str,
                               checked: Container[SignatureCheck] = ()) -> Accepted:
        """As member: the host's sequenced copy of an event (`checked` as for submissions)."""
        network, duplicate = await self._next_from_host(tx, seqd, via)
        if duplicate is not None:
            return duplicate
        origin_keys, host_keys = await self.keys.event_lookups(tx, network.id, seqd)
        verify_sequenced(seqd, origin_keys, host_lookup=host_keys, checked=checked)
        check_origin_ts(seqd.event, seqd.host_ts)
        if seqd.seq == 1:
            check_chain_link(None, seqd)
            before, after = None, initial_state(seqd.event)
            if after.history_visible_to_new_members != network.history_visible:
                raise RuleViolation("invite_mismatch", f"the invite to {network.name} said earlier history is "
                                    f"{'visible' if network.history_visible else 'hidden'}; the network says "
                                    "otherwise")
        else:
            assert network.head_hash is not None  # head_seq >= 1
            check_chain_link(ChainHead(network.name, network.host, network.head_seq, network.head_hash,
                                       network.head_ts), seqd)
            before = await self._states.created(tx, network)
            messages = await message_lookup(tx, network.id, seqd.event, sequenced_only=True)
            authorize(before, seqd.event, via=network.host, messages=messages)
            after = apply(before, seqd.event)
        wire = encode_canonical(seqd.to_wire())
        pending = await tx.events.find(seqd.event_id)
        if pending is not None and pending.seq is not None:  # applied meanwhile by another worker
            if pending.seq == seqd.seq:
                return Accepted(seqd.event_id, seqd.seq, duplicate=True)
            raise ChainError(f"event {seqd.event_id} is already at seq {pending.seq}, not {seqd.seq}")
        if pending is not None:
            row = pending.row_id
            await tx.events.set_sequenced(row, seq=seqd.seq, wire=wire)
            # Ours, back from the host: delivered, whatever a late answer to our send says.
            await tx.outbox.event_delivered(row, now=self._clock.now_ms())
        else:
            row = await self._add_sequenced(tx, network, seqd, wire)
        await self._advance(tx, network, seqd, after, row)
        return Accepted(seqd.event_id, seqd.seq)

    async def accept_stub(self, tx: NetworkTransaction, stub: StubEvent, *, via: str) -> Accepted:
        """As member: the host's stub of an event this node may not see, which is only ever a
        message of a network that hides history from later members, placed before this company
        was admitted. Its host signature and chain link are checked like any event's; the
        content, and so the origin's signature and the rules, cannot be."""
        network, duplicate = await self._next_from_host(tx, stub, via)
        if duplicate is not None:
            return duplicate
        state = await self._states.created(tx, network)
        if state.history_visible_to_new_members or state.is_member(self.server):
            raise RuleViolation("history_visible", f"the host sent seq {stub.seq} of {network.name} without its "
                                "content, where this company may see it")
        verify_stub(stub, await self.keys.direct_lookup(tx, [stub.host], at_ms=stub.host_ts))
        assert network.head_hash is not None  # a stub is never the first event
        check_chain_link(ChainHead(network.name, network.host, network.head_seq, network.head_hash, network.head_ts),
                         stub)
        # Nothing to project, show or audit: only the chain moves.
        await tx.events.add(
            network_id=network.id, event_id=stub.event_id, seq=stub.seq, type=STUB_TYPE, thread=stub.thread,
            sender="", origin=stub.origin, origin_ts=stub.host_ts, wire=encode_canonical(stub.to_wire()),
            now=self._clock.now_ms(),
        )
        await tx.networks.set_head(network.id, seq=stub.seq, link_hash=stub.link_hash, host_ts=stub.host_ts)
        self._locked(tx)[network.name] = replace(network, head_seq=stub.seq, head_hash=stub.link_hash,
                                                 head_ts=stub.host_ts)
        self._states.remember(tx, network.name, stub.seq, state)
        return Accepted(stub.event_id, stub.seq)

    async def _next_from_host(self, tx: NetworkTransaction, placed: SequencedEvent | StubEvent,
                              via: str) -> tuple[NetworkRecord, Accepted | None]:
        """The network, locked, if `placed` comes from its host at the next seq; with a duplicate's
        answer if this node holds the same event there already. Refuses anything else."""
        network = await self._network(tx, placed.network)
        if network.host == self.server or via != network.host or placed.host != network.host:
            raise RuleViolation("wrong_relay", "only the network's host sends sequenced events")
        if placed.seq <= network.head_seq:
            existing = await tx.events.find(placed.event_id)
            if existing is not None and existing.seq == placed.seq:
                return network, Accepted(placed.event_id, placed.seq, duplicate=True)
            raise ChainError(f"the host sent a different event at seq {placed.seq}")
        if placed.seq > network.head_seq + 1:
            raise OutOfOrder(f"expected seq {network.head_seq + 1} of {network.name}, got {placed.seq}")
        return network, None

    async def locked_network(self, tx: NetworkTransaction, name: str) -> NetworkRecord | None:
        """The network's row as this transaction's events will see it (locked), or None."""
        try:
            return await self._network(tx, name)
        except UnknownNetwork:
            return None

    # Internals

    def _locked(self, tx: NetworkTransaction) -> dict[str, NetworkRecord]:
        """The network rows `tx` has locked, by name (`_network`)."""
        return tx.memo.setdefault(self, {})  # type: ignore[return-value]

    async def _network(self, tx: NetworkTransaction, name: str) -> NetworkRecord:
        """The network's row, locked for the rest of `tx`: read once per transaction, and kept
        current by `_advance`, so a batch of events for one network reads it once."""
        locked = self._locked(tx)
        network = locked.get(name)
        if network is None:
            network = await tx.networks.find(name, for_update=True)
            if network is None:
                raise UnknownNetwork(f"this node has no network {name!r}")
            locked[name] = network
        return network

    async def _sequence(self, tx: NetworkTransaction, network: NetworkRecord, state: NetworkState | None,
                        signed: SignedEvent) -> Accepted:
        seqd = sequence_event(signed, seq=network.head_seq + 1, prev_hash=network.head_hash,
                              host=self.server, host_ts=self._host_ts(network), host_key=self.keys.signing_key)
        after = initial_state(signed.event) if state is None else apply(state, signed.event)
        row = await self._add_sequenced(tx, network, seqd, encode_canonical(seqd.to_wire()))
        await self._advance(tx, network, seqd, after, row)
        before = recipients(state) if state is not None else frozenset()
        await self._enqueue(tx, row, (before | recipients(after)) - {self.server})
        return Accepted(signed.event_id, seqd.seq, origin_ts=signed.event.origin_ts)

    async def _add_sequenced(self, tx: NetworkTransaction, network: NetworkRecord, seqd: SequencedEvent,
                             wire: bytes) -> int:
        event = seqd.event
        return await tx.events.add(
            network_id=network.id, event_id=seqd.event_id, seq=seqd.seq, type=event.type, thread=event.thread,
            sender=str(event.sender), origin=event.origin, origin_ts=event.origin_ts, wire=wire,
            now=self._clock.now_ms(),
        )

    async def _advance(self, tx: NetworkTransaction, network: NetworkRecord, seqd: SequencedEvent,
                       after: NetworkState, row: int) -> None:
        """The event is now part of this node's copy: pin, project, and show it to local clients."""
        content = seqd.event.content
        if isinstance(content, MemberAdmitted) and network.host != self.server:
            await self._vouched(tx, network, content)
        await tx.networks.set_head(network.id, seq=seqd.seq, link_hash=seqd.link_hash, host_ts=seqd.host_ts)
        self._locked(tx)[network.name] = replace(network, head_seq=seqd.seq, head_hash=seqd.link_hash,
                                                             head_ts=seqd.host_ts)
        now = self._clock.now_ms()
        await project(tx, network.id, seqd.event, after, now=now, event_id=seqd.event_id)
        if not await held_back(tx, network, seqd.event, server=self.server, now=now):
            await tx.feed_writer.append_network_event(network_id=network.id, thread=seqd.event.thread, event_row=row,
                                                      now=now)
        if seqd.event.origin != self.server and not seqd.event.type.startswith("message."):
            # What another company did to a network this company is in; its own actions are
            # audited where its operators take them, and messages are the chain's to keep.
            await tx.audit.record(actor=str(seqd.event.sender), action=seqd.event.type, now=now,
                                  target=_audit_target(seqd.event), network=network.name, partner=seqd.event.origin,
                                  detail={"event": seqd.event_id, "seq": seqd.seq})
        self._states.remember(tx, network.name, seqd.seq, after)

    async def _vouched(self, tx: NetworkTransaction, network: NetworkRecord, content: MemberAdmitted) -> None:
        """The host vouches for the admitted company's key. Keep it for this network only
        (`node.federation.key_ring`), and only if it agrees with what the company itself publishes, as
        far as this node knows that (its peering keys, or its own document: `InboundEvents`
        fetches that first where it can). A key this node cannot check yet is kept as
        unconfirmed; one that disagrees is refused (`KeyConflict`)."""
        key = VerifyKey.from_base64(content.public_key)
        if key.key_id != content.key_id:
            raise RuleViolation("key_mismatch", f"the key vouched for {content.server} does not match its id")
        lookup = await self.keys.direct_lookup(tx, [content.server], at_ms=0)
        own = content.server == self.server
        published = [k for k in await tx.peers.keys(content.server) if k.revoked_at is None] if not own else None
        try:
            matches = lookup(content.server, key.key_id) == key
        except UnknownKey:
            matches = False
        if own or published:
            if not matches:
                fingerprints = ([self.keys.signing_key.verify_key.fingerprint] if own
                                else [VerifyKey(k.public_key).fingerprint for k in published or []])
                raise KeyConflict(f"the host vouched for a key of {content.server} ({key.fingerprint}) that "
                                  f"{content.server} does not publish", server=content.server,
                                  vouched=key.fingerprint, published=fingerprints)
            if own:
                return
        await tx.vouched_keys.pin(network.id, content.server, key_id=key.key_id, public_key=key.raw,
                                  status="confirmed" if published else "unconfirmed", endpoint=content.endpoint,
                                  now=self._clock.now_ms())
        self.keys.forget(tx, content.server)

    async def _enqueue(self, tx: NetworkTransaction, row: int, destinations: set[str] | frozenset[str]) -> None:
        blocked = await tx.peers.blocked_among(destinations) if destinations else set()
        wanted = sorted(set(destinations) - blocked)
        if wanted:
            await tx.outbox.enqueue(row, wanted, now=self._clock.now_ms())
            tx.after_commit(lambda: self._on_enqueue(wanted))  # once the rows are there to see


def _audit_target(event: Event) -> str:
    """What a lifecycle event is about, for its audit row: a company, a participant or a thread."""
    content = event.content
    for field in ("server", "participant"):
        if hasattr(content, field):
            return f"{event.network}:{getattr(content, field)}"
    return f"{event.network}:{event.thread}" if event.thread else event.network
