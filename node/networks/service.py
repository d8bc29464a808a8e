"""What operators do with networks through the admin API: create, attach and detach their own
people and agents, open and close shared threads, close, leave, remove, and watch peers.
Each action is an event through the federation engine plus its audit row, in one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from federation.event_content import (
    Content,
    MemberLeft,
    MemberRemoved,
    NetworkClosed,
    ParticipantAttached,
    ParticipantDetached,
    ThreadClosed,
    ThreadJoined,
    ThreadOpened,
    ThreadSilenced,
)
from federation.identifiers import ParticipantId
from federation.keys import VerifyKey
from node.basics.clock import Clock
from node.basics.errors import Conflict
from node.federation.catch_up import CatchUpWorker
from node.federation.delivery import DeliveryWorker
from node.federation.engine import FederationEngine
from node.federation.peering import operator_of
from node.guard.outbound import OutboundGuard, Verdict
from node.networks.models import (
    AlertList,
    AlertOut,
    CreateNetwork,
    HaltOut,
    NetworkList,
    NetworkOut,
    OpenSharedThread,
    ParticipantOut,
    PeerList,
    PeerOut,
    RefusalOut,
    SharedThreadOut,
    VouchedKeyOut,
)
from node.workspace.directory import Directory
from storage.network.networks import NetworkRecord
from storage.storage import NetworkTransaction, Storage, Transaction

__all__ = ["NetworkService", "network_out"]

# federation.event_content bounds display names shared with other companies to 100 characters.
_MAX_SHARED_NAME = 100


class NetworkService:
    def __init__(self, storage: Storage, engine: FederationEngine, delivery: DeliveryWorker,
                 directory: Directory, clock: Clock, catch_up: CatchUpWorker, guard: OutboundGuard) -> None:
        self._storage = storage
        self._guard = guard
        self._engine = engine
        self._delivery = delivery
        self._catch_up = catch_up
        self._directory = directory
        self._clock = clock
        self._operator = operator_of(engine.server)

    async def create(self, req: CreateNetwork, *, actor: str) -> NetworkOut:
        title = await self._guard.check(author=str(self._operator), network=req.name, thread=None, field="title",
                                        text=req.title)
        async with self._storage.transaction() as tx:
            network = await self._engine.create_network(tx, name=req.name, title=title.text,
                                                        history_visible=req.history_visible, sender=self._operator)
            await self._guard.record(tx, title, author=str(self._operator), network=req.name, thread=None,
                                     field="title", event_id=(await tx.events.ids_between(network.id, 1, 1))[1])
            await tx.audit.record(actor=actor, action="network.create", target=req.name, now=self._clock.now_ms(),
                                  network=req.name)
            return await network_out(tx, network, self._engine.server)

    async def list(self, *, archived: bool = False) -> NetworkList:
        """The networks in use (`archived`: those put away instead)."""
        async with self._storage.network_transaction() as tx:
            return NetworkList(items=[await network_out(tx, n, self._engine.server) for n in await tx.networks.all()
                                      if (n.archived_at is not None) == archived])

    async def set_archived(self, name: str, archived: bool, *, actor: str) -> NetworkOut:
        """Put a closed network away here, or back: local, nothing is sent or deleted."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            network = await tx.networks.get(name)
            if archived and not network.closed:
                raise Conflict(f"{name} is not closed: only a closed network is archived (the host closes it)")
            if (network.archived_at is not None) == archived:
                raise Conflict(f"{name} is {'already' if archived else 'not'} archived")
            await tx.networks.set_archived(network.id, now if archived else None)
            await tx.audit.record(actor=actor, action="network.archive" if archived else "network.unarchive",
                                  target=name, network=name, now=now)
            return await network_out(tx, await tx.networks.get(name), self._engine.server)

    async def get(self, name: str) -> NetworkOut:
        async with self._storage.network_transaction() as tx:
            return await network_out(tx, await tx.networks.get(name), self._engine.server)

    async def attach(self, name: str, ref: str, *, actor: str) -> NetworkOut:
        async with self._acting() as tx:
            (principal,) = await self._directory.resolve(tx, [ref], field="participant")
            participant = ParticipantId(principal.kind, principal.handle, self._engine.server)
            content = ParticipantAttached(participant=participant,
                                          display_name=principal.display_name[:_MAX_SHARED_NAME])
            return await self._act(tx, name, None, content, actor, "network.attach", str(participant))

    async def detach(self, name: str, ref: str, *, actor: str) -> NetworkOut:
        async with self._acting() as tx:
            (principal,) = await self._directory.resolve(tx, [ref], field="participant")
            participant = ParticipantId(principal.kind, principal.handle, self._engine.server)
            return await self._act(tx, name, None, ParticipantDetached(participant=participant), actor,
                                   "network.detach", str(participant))

    async def open_thread(self, name: str, req: OpenSharedThread, *, actor: str) -> NetworkOut:
        participants = tuple(dict.fromkeys(ParticipantId.parse(p) for p in req.participants))  # one each
        title = await self._guard.check(author=str(self._operator), network=name, thread=req.name, field="title",
                                        text=req.title)
        async with self._acting() as tx:
            return await self._act(tx, name, req.name, ThreadOpened(title=title.text, participants=participants),
                                   actor, "thread.open", req.name, guarded=title)

    async def add_to_thread(self, name: str, thread: str, participants: Sequence[str], *, actor: str) -> NetworkOut:
        """As an operator of the host, or of the company that opened the thread: more participants."""
        added = tuple(dict.fromkeys(ParticipantId.parse(p) for p in participants))
        async with self._acting() as tx:
            return await self._act(tx, name, thread, ThreadJoined(participants=added), actor, "thread.add",
                                   f"{thread} {' '.join(str(p) for p in added)}"[:300])

    async def close_thread(self, name: str, thread: str, *, actor: str) -> NetworkOut:
        async with self._acting() as tx:
            return await self._act(tx, name, thread, ThreadClosed(), actor, "thread.close", thread)

    async def silence_agents(self, name: str, thread: str, agents: bool, *, actor: str) -> NetworkOut:
        """As host: only people may write in `thread` (or agents again), in the chain for every member."""
        async with self._acting() as tx:
            return await self._act(tx, name, thread, ThreadSilenced(agents=agents), actor,
                                   "thread.silence" if agents else "thread.unsilence", thread)

    async def set_frozen(self, name: str, frozen: bool, *, actor: str) -> NetworkOut:
        """This company's own kill switch for a network: while frozen, its people and agents cannot
        act in it (posts answer 409 `network_frozen`); operators still can, to leave or close."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            network = await tx.networks.get(name)
            if (network.frozen_at is not None) == frozen:
                raise Conflict(f"{name} is {'already' if frozen else 'not'} frozen")
            await tx.networks.set_frozen(network.id, now if frozen else None)
            await tx.audit.record(actor=actor, action="network.freeze" if frozen else "network.unfreeze",
                                  target=name, network=name, now=now)
            return await network_out(tx, await tx.networks.get(name), self._engine.server)

    async def close(self, name: str, *, actor: str) -> NetworkOut:
        async with self._acting() as tx:
            return await self._act(tx, name, None, NetworkClosed(), actor, "network.close", name)

    async def leave(self, name: str, *, actor: str) -> NetworkOut:
        async with self._acting() as tx:
            return await self._act(tx, name, None, MemberLeft(server=self._engine.server), actor, "network.leave",
                                   name)

    async def remove_member(self, name: str, server: str, *, actor: str) -> NetworkOut:
        async with self._acting() as tx:
            return await self._act(tx, name, None, MemberRemoved(server=server), actor, "network.remove", server,
                                   partner=server)

    async def _act(self, tx, name: str, thread: str | None, content: Content, actor: str, action: str,
                   target: str, partner: str | None = None, guarded: Verdict | None = None) -> NetworkOut:
        accepted = await self._engine.author(tx, name, thread=thread, sender=self._operator, content=content)
        if guarded is not None:
            await self._guard.record(tx, guarded, author=str(self._operator), network=name, thread=thread,
                                     field="title", event_id=accepted.event_id)
        await tx.audit.record(actor=actor, action=action, target=f"{name}:{target}", now=self._clock.now_ms(),
                              network=name, partner=partner, detail={"event": accepted.event_id, "pending": accepted.seq is None})
        return await network_out(tx, await tx.networks.get(name), self._engine.server)

    @asynccontextmanager
    async def _acting(self) -> AsyncIterator[Transaction]:
        """A transaction whose outbox rows the delivery worker is told about once committed."""
        async with self._storage.transaction() as tx:
            yield tx
        self._delivery.wake()

    async def resume(self, name: str, *, actor: str) -> NetworkOut:
        """Try a halted network again now (node.federation.halting), after its cause was fixed."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            network = await tx.networks.get(name)
            if not await tx.halts.retry_now(network.id, now=now):
                raise Conflict(f"{name} is not halted: nothing to resume")
            await tx.audit.record(actor=actor, action="network.resume", target=name, now=now, network=name)
            out = await network_out(tx, network, self._engine.server)
        self._catch_up.request(name)
        return out

    async def alerts(self, *, kind: str | None = None) -> AlertList:
        async with self._storage.network_transaction(read_only=True) as tx:
            found = await tx.alerts.all(kind=kind)
        return AlertList(items=[AlertOut(id=a.id, kind=a.kind, network=a.network, server=a.server, message=a.message,
                                         detail=a.detail, count=a.count, created_at=a.created_at,
                                         last_seen_at=a.last_seen_at) for a in found])

    async def peers(self) -> PeerList:
        async with self._storage.network_transaction() as tx:
            depth = await tx.outbox.depth()
            items = []
            for peer in await tx.peers.all():
                status = await tx.peers.delivery(peer.server)
                keys = await tx.peers.keys(peer.server)
                items.append(PeerOut(
                    server=peer.server, status=peer.status, endpoint=peer.endpoint,
                    fingerprints=[VerifyKey(k.public_key).fingerprint for k in keys if k.revoked_at is None],
                    queue_depth=depth.get(peer.server, 0), last_success_at=status.last_success_at,
                    last_error=status.last_error, last_error_at=status.last_error_at,
                    next_attempt_at=status.next_attempt_at, retry_in_ms=self._delivery.retry_in_ms(peer.server),
                ))
        return PeerList(items=items)


async def network_out(tx: NetworkTransaction, network: NetworkRecord, server: str) -> NetworkOut:
    participants = await tx.networks.participants(network.id)
    threads = await tx.networks.threads(network.id)
    members = await tx.networks.members(network.id)
    halt = await tx.halts.find(network.id)
    vouched = [k for member in sorted(members) for k in await tx.vouched_keys.in_network(network.id, member)]
    return NetworkOut(
        name=network.name, host=network.host, title=network.title, hosted_here=network.host == server,
        closed=network.closed, frozen_at=network.frozen_at, archived_at=network.archived_at,
        head_seq=network.head_seq, members=members,
        participants=[ParticipantOut(id=p, display_name=d, attached=a) for p, (d, a) in sorted(participants.items())],
        threads=[SharedThreadOut(network=t.network, name=t.name, title=t.title, closed=t.closed,
                                 participants=list(t.participants), agents_silenced=t.agents_silenced) for t in threads],
        pending_events=len(await tx.events.pending(network.id)),
        halted=None if halt is None else HaltOut(seq=halt.seq, event_id=halt.event_id, code=halt.code,
                                                 reason=halt.reason, halted_at=halt.since, tries=halt.tries,
                                                 next_try_at=halt.next_try_at),
        refusals=[RefusalOut(member=r.destination, event_id=r.event_id, seq=r.seq, type=r.type, error=r.error, created_at=r.at)
                  for r in await tx.outbox.refusals(network.id)],
        vouched_keys=[VouchedKeyOut(server=k.server, key_id=k.key_id, fingerprint=VerifyKey(k.public_key).fingerprint,
                                    status=k.status) for k in vouched],
    )
