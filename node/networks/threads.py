"""People and agents in shared threads, through the client API, always as themselves.

A post is authored by the caller's participant id and goes through the federation engine: on
the host it is sequenced at once, on a member it is pending until the host's copy returns.
Reading shows the node's own copy, so it works while the host is away; the caller's pending
posts come last, marked pending, with their delivery state.
"""

from __future__ import annotations

from federation.event_content import MessagePosted
from federation.identifiers import ParticipantId
from node.basics.clock import Clock
from node.basics.errors import NotFoundError
from node.federation.chain_state import stored_view
from node.federation.engine import FederationEngine
from node.guard.outbound import OutboundGuard
from node.http.idempotency import IdempotencyKey, Posted, run_once
from node.networks.models import SharedMessageOut, SharedMessagePage, SharedThreadList, SharedThreadOut
from node.workspace.directory import Directory
from storage.group_commit import GroupCommit
from storage.private.principals import Principal
from storage.storage import NetworkTransaction, Storage, Transaction

__all__ = ["SharedThreadService"]


class SharedThreadService:
    def __init__(self, storage: Storage, engine: FederationEngine, directory: Directory, clock: Clock,
                 guard: OutboundGuard) -> None:
        self._storage = storage
        self._guard = guard
        self._clock = clock
        self._engine = engine
        self._directory = directory
        # Concurrent posts share a transaction; a post's work only writes, so it can run again.
        self._posts = GroupCommit(storage)

    async def threads(self, caller: Principal) -> SharedThreadList:
        me = self._directory.participant_id(caller)
        async with self._storage.network_transaction() as tx:
            found = await tx.networks.threads_of_participant(me)
            held = {(t.network, t.name) for t in found if await self._held_back(tx, t.network, t.name)}
            archived = {n.name for n in await tx.networks.all() if n.archived_at is not None}
        found = [t for t in found if (t.network, t.name) not in held and t.network not in archived]
        return SharedThreadList(items=[
            SharedThreadOut(network=t.network, name=t.name, title=t.title, closed=t.closed,
                            participants=list(t.participants), agents_silenced=t.agents_silenced)
            for t in found
        ])

    async def read(self, caller: Principal, network: str, thread: str, *, after: int, limit: int) -> SharedMessagePage:
        me = self._directory.participant_id(caller)
        async with self._storage.network_transaction() as tx:
            network_id = await self._thread_of(tx, me, network, thread)
            page = await tx.events.in_thread(network_id, thread, after_seq=after, limit=limit, include_pending=True)
            mine = [e.row_id for e in page if e.sender == me]
            delivery = await tx.outbox.states_for_events(mine)
        messages = []
        for stored in page:
            if stored.type != "message.posted":
                continue
            content, sequenced_at = stored_view(stored.wire)
            messages.append(SharedMessageOut(
                id=stored.event_id, network=network, thread=thread, seq=stored.seq,
                status="pending" if stored.seq is None else "sequenced", sender=stored.sender, body=content["body"],
                origin_ts=stored.origin_ts, sequenced_at=sequenced_at,
                delivery=delivery.get(stored.row_id) if stored.sender == me else None,
            ))
        last_seq = page[-1].seq if len(page) == limit else None
        return SharedMessagePage(messages=messages, next_cursor=str(last_seq) if last_seq is not None else None)

    async def post(self, caller: Principal, network: str, thread: str, body: str, *,
                   idempotency: IdempotencyKey | None = None) -> Posted[SharedMessageOut]:
        me = ParticipantId(caller.kind, caller.handle, self._engine.server)
        # Before anything is signed: a blocked body is refused here and never reaches the outbox.
        verdict = await self._guard.check(author=str(me), network=network, thread=thread, field="message",
                                          text=body)

        async def work(tx: Transaction) -> SharedMessageOut:
            await self._thread_of(tx, str(me), network, thread)
            accepted = await self._engine.author(tx, network, thread=thread, sender=me,
                                                 content=MessagePosted(body=verdict.text))
            assert accepted.origin_ts is not None  # author always signs
            await self._guard.record(tx, verdict, author=str(me), network=network, thread=thread, field="message",
                                     event_id=accepted.event_id)
            return SharedMessageOut(
                id=accepted.event_id, network=network, thread=thread, seq=accepted.seq,
                status="pending" if accepted.seq is None else "sequenced", sender=str(me), body=verdict.text,
                origin_ts=accepted.origin_ts, delivery=None, redacted=verdict.rules("redact") or None,
            )

        return await run_once(self._storage, self._clock, caller.id, idempotency, SharedMessageOut, work,
                              group=self._posts)

    async def _thread_of(self, tx: NetworkTransaction, me: str, network: str, thread: str) -> int:
        """The network's row id, if `me` takes part in the thread; otherwise it does not exist."""
        network_id = await tx.networks.network_id_if_participant(network, thread, me)
        if network_id is None or await tx.consents.status(network_id, thread) not in (None, "accepted"):
            # Held back until this company's operator accepts it (node.federation.consent).
            raise NotFoundError(f"shared thread {network}/{thread} not found")
        return network_id

    @staticmethod
    async def _held_back(tx: NetworkTransaction, network: str, thread: str) -> bool:
        record = await tx.consents.find(network, thread)
        return record is not None and record.status != "accepted"
