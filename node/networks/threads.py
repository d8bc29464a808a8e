"""People and agents in shared threads, through the client API, always as themselves.

A post is authored by the caller's participant id and goes through the federation engine: on
the host it is sequenced at once, on a member it is pending until the host's copy returns.
Reading shows the node's own copy, so it works while the host is away; the caller's pending
posts come last, marked pending, with their delivery state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

from federation.errors import InvalidIdentifier
from federation.event_content import (
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    MessageReacted,
    ThreadJoined,
    ThreadOpened,
)
from federation.identifiers import ParticipantId
from node.basics.clock import Clock
from node.basics.errors import Forbidden, InvalidRequest, NetworkFrozen, NotFoundError
from node.federation.activity import ActivityMessage, ActivityRelay, State
from node.federation.chain_state import stored_view
from node.federation.engine import FederationEngine
from node.guard.outbound import OutboundGuard
from node.http.idempotency import IdempotencyKey, Posted, run_once
from node.networks.files import PreparedFile, SharedFileService, thread_network_id
from node.networks.models import (
    ActivityList,
    ActivityOut,
    AttachmentOut,
    EditOut,
    NetworkParticipants,
    ParticipantInfo,
    ReactionOut,
    SharedMessageOut,
    SharedMessagePage,
    SharedSearchResults,
    SharedThreadList,
    SharedThreadOut,
    ThreadChangeOut,
)
from node.workspace.directory import Directory
from storage.group_commit import GroupCommit
from storage.network.events import StoredEvent
from storage.private.principals import Principal
from storage.storage import NetworkTransaction, Storage, Transaction

__all__ = ["SharedThreadService"]


class SharedThreadService:
    def __init__(self, storage: Storage, engine: FederationEngine, directory: Directory, clock: Clock,
                 guard: OutboundGuard, files: SharedFileService, activity: ActivityRelay) -> None:
        self._storage = storage
        self._activity = activity
        self.files = files
        self._guard = guard
        self._clock = clock
        self._engine = engine
        self._directory = directory
        # Concurrent posts share a transaction; a post's work only writes, so it can run again.
        self._posts = GroupCommit(storage)

    def participant(self, caller: Principal) -> str:
        return self._directory.participant_id(caller)

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
            network_id = await thread_network_id(tx, me, network, thread)
            page = await tx.events.in_thread(network_id, thread, after_seq=after, limit=limit, include_pending=True)
            mine = [e.row_id for e in page if e.sender == me]
            delivery = await tx.outbox.states_for_events(mine)
            changes = await _latest_changes(tx, network_id, thread)
        messages = [_message_out(stored, network, thread, me, delivery, changes)
                    for stored in page if stored.type == "message.posted"]
        last_seq = page[-1].seq if len(page) == limit else None
        return SharedMessagePage(items=messages, next_cursor=str(last_seq) if last_seq is not None else None)

    async def read_back(self, caller: Principal, network: str, thread: str, *, before: int | None,
                        limit: int) -> SharedMessagePage:
        """The `limit` messages before seq `before` (None: the newest, with the caller's pending
        posts after them), oldest first; `prev_cursor` goes further back while there is more."""
        me = self._directory.participant_id(caller)
        async with self._storage.network_transaction() as tx:
            network_id = await thread_network_id(tx, me, network, thread)
            page = await tx.events.messages_before(network_id, thread, before_seq=before, limit=limit)
            pending = await tx.events.pending_in_thread(network_id, thread) if before is None else []
            mine = [e.row_id for e in [*page, *pending] if e.sender == me]
            delivery = await tx.outbox.states_for_events(mine)
            changes = await _latest_changes(tx, network_id, thread)
        messages = [_message_out(stored, network, thread, me, delivery, changes)
                    for stored in [*page, *(p for p in pending if p.sender == me)]]
        first_seq = page[0].seq if len(page) == limit else None
        return SharedMessagePage(items=messages, next_cursor=None,
                                 prev_cursor=str(first_seq) if first_seq is not None else None)

    async def network_participants(self, caller: Principal, network: str) -> NetworkParticipants:
        """Who takes part in a network the caller is attached to: display names and companies."""
        me = self._directory.participant_id(caller)
        async with self._storage.network_transaction(read_only=True) as tx:
            record = await tx.networks.find(network)
            found = await tx.networks.participants(record.id) if record is not None else {}
            if record is None or record.archived_at is not None or not found.get(me, ("", False))[1]:
                raise NotFoundError(f"network {network} not found (or the caller is not attached to it)")
            members = await tx.networks.members(record.id)
        items = []
        for pid, (name, attached) in sorted(found.items()):
            parsed = ParticipantId.parse(pid)
            items.append(ParticipantInfo(id=pid, display_name=name, kind=cast(Any, parsed.kind), company=parsed.server,
                                         attached=attached))
        return NetworkParticipants(network=network, host=record.host, companies=dict(members), items=items)

    async def open_thread(self, caller: Principal, network: str, name: str, title: str,
                          participants: list[str]) -> ThreadChangeOut:
        """A shared thread opened by the caller (scope `threads`), with it among the participants.
        Each other company's node applies its own consent policy to it."""
        me = ParticipantId(caller.kind, caller.handle, self._engine.server)
        everyone = tuple(dict.fromkeys([me, *(ParticipantId.parse(p) for p in participants)]))
        verdict = await self._guard.check(author=str(me), network=network, thread=name, field="title", text=title)
        async with self._storage.transaction() as tx:
            accepted = await self._engine.author(tx, network, thread=name, sender=me,
                                                 content=ThreadOpened(title=verdict.text, participants=everyone))
            await self._guard.record(tx, verdict, author=str(me), network=network, thread=name, field="title",
                                     event_id=accepted.event_id)
            await tx.audit.record(actor=str(me), action="thread.open", target=f"{network}:{name}",
                                  now=self._clock.now_ms(), network=network,
                                  detail={"participants": [str(p) for p in everyone]})
        return ThreadChangeOut(id=accepted.event_id, network=network, thread=name, participants=[str(p) for p in everyone],
                               status="pending" if accepted.seq is None else "sequenced")

    async def add_participants(self, caller: Principal, network: str, thread: str,
                               participants: list[str]) -> ThreadChangeOut:
        """Participants added to a thread the caller takes part in (scope `threads`)."""
        me = ParticipantId(caller.kind, caller.handle, self._engine.server)
        added = tuple(dict.fromkeys(ParticipantId.parse(p) for p in participants))
        async with self._storage.transaction() as tx:
            await thread_network_id(tx, str(me), network, thread)
            accepted = await self._engine.author(tx, network, thread=thread, sender=me,
                                                 content=ThreadJoined(participants=added))
            await tx.audit.record(actor=str(me), action="thread.add", target=f"{network}:{thread}",
                                  now=self._clock.now_ms(), network=network,
                                  detail={"participants": [str(p) for p in added]})
        return ThreadChangeOut(id=accepted.event_id, network=network, thread=thread, participants=[str(p) for p in added],
                               status="pending" if accepted.seq is None else "sequenced")

    async def set_activity(self, caller: Principal, network: str, thread: str, state: State, ttl_s: int) -> ActivityList:
        """The caller is typing, working, or neither (`idle`) in a thread it takes part in: shown
        to every member for `ttl_s` seconds, never stored."""
        me = self._directory.participant_id(caller)
        async with self._storage.network_transaction(read_only=True) as tx:
            await thread_network_id(tx, me, network, thread)
            record = await tx.networks.get(network)
        if record.frozen_at is not None:
            raise NetworkFrozen(f"{network} is frozen by this company's operators")
        await self._activity.local(network, ActivityMessage(thread=thread, participant=me, state=state, ttl_s=ttl_s))
        return await self.activity(caller, network, thread)

    async def activity(self, caller: Principal, network: str, thread: str) -> ActivityList:
        me = self._directory.participant_id(caller)
        async with self._storage.network_transaction(read_only=True) as tx:
            await thread_network_id(tx, me, network, thread)
        now = time.monotonic()
        return ActivityList(items=[ActivityOut(participant=a.participant, state=cast(Any, a.state),
                                               expires_in_s=round(a.expires_at - now, 1))
                                   for a in self._activity.board.current(network, thread)])

    async def search(self, caller: Principal, query: str, *, network: str | None, limit: int) -> SharedSearchResults:
        """Messages of the shared threads the caller takes part in that hold every word of `query`,
        in this node's own copy (so it works while other nodes are away), newest first."""
        me = self._directory.participant_id(caller)
        async with self._storage.network_transaction(read_only=True) as tx:
            hits = await tx.message_text.search(query, participant=me, network=network, limit=limit)
            found = [await tx.events.find(hit.event_id) for hit in hits]
            stored = [e for e in found if e is not None and e.type == "message.posted"]
            changes = {}
            for e in stored:
                if (e.network_id, e.thread) not in changes:
                    changes[e.network_id, e.thread] = await _latest_changes(tx, e.network_id, cast(str, e.thread))
            delivery = await tx.outbox.states_for_events([e.row_id for e in stored if e.sender == me])
        names = {hit.event_id: hit for hit in hits}
        return SharedSearchResults(items=[
            _message_out(e, names[e.event_id].network, names[e.event_id].thread, me, delivery,
                         changes[e.network_id, e.thread]) for e in stored])

    async def post(self, caller: Principal, network: str, thread: str, body: str, *, reply_to: str | None = None,
                   mentions: list[str] | None = None, attachments: list[str] | None = None,
                   data: dict[str, Any] | None = None,
                   idempotency: IdempotencyKey | None = None) -> Posted[SharedMessageOut]:
        me = ParticipantId(caller.kind, caller.handle, self._engine.server)
        # Before anything is signed: a blocked body or file is refused here and never reaches the outbox.
        verdict = await self._guard.check(author=str(me), network=network, thread=thread, field="message",
                                          text=body)
        files: list[PreparedFile] = []
        if attachments:
            async with self._storage.network_transaction(read_only=True) as tx:
                await thread_network_id(tx, str(me), network, thread)  # 404 before the files are read
            files = await self.files.prepare(str(me), network, thread, attachments)

        async def work(tx: Transaction) -> SharedMessageOut:
            await thread_network_id(tx, str(me), network, thread)
            content = MessagePosted(body=verdict.text, reply_to=reply_to, mentions=_participants(mentions),
                                    attachments=tuple(f.attachment for f in files) or None, data=data)
            accepted = await self._engine.author(tx, network, thread=thread, sender=me, content=content)
            assert accepted.origin_ts is not None  # author always signs
            await self.files.attach(tx, files, event_id=accepted.event_id)
            await self._guard.record(tx, verdict, author=str(me), network=network, thread=thread, field="message",
                                     event_id=accepted.event_id)
            for prepared in files:
                await self._guard.record(tx, prepared.verdict, author=str(me), network=network, thread=thread,
                                         field="file", event_id=accepted.event_id)
            return SharedMessageOut(
                id=accepted.event_id, network=network, thread=thread, seq=accepted.seq,
                status="pending" if accepted.seq is None else "sequenced", sender=str(me), body=verdict.text,
                created_at=accepted.origin_ts, delivery=None, redacted=verdict.rules("redact") or None,
                reply_to=reply_to, mentions=list(mentions or []), data=data,
                attachments=_attachments_out(content.to_wire()),
            )

        return await run_once(self._storage, self._clock, caller.id, idempotency, SharedMessageOut, work,
                              group=self._posts)

    async def change(self, caller: Principal, network: str, thread: str, event_id: str, *,
                     body: str | None) -> SharedMessageOut:
        """Edit (`body`) or delete (None) one of the caller's own messages: an event every member
        applies (the rules let only the author's company change a message). An edit runs through
        the outbound guard like a post; "working on it", then the answer, is two events."""
        me = ParticipantId(caller.kind, caller.handle, self._engine.server)
        verdict = None
        if body is not None:
            verdict = await self._guard.check(author=str(me), network=network, thread=thread, field="edit", text=body)
        async with self._storage.transaction() as tx:
            original = await _message(tx, str(me), network, thread, event_id)
            if original.sender != str(me):
                raise Forbidden("only the message's author may edit or delete it")
            content = (MessageDeleted(event_id=event_id) if verdict is None
                       else MessageEdited(event_id=event_id, body=verdict.text))
            accepted = await self._engine.author(tx, network, thread=thread, sender=me, content=content)
            if verdict is None:
                await tx.files.remove_for_event(event_id)  # at once here; every other node on the delete
            else:
                await self._guard.record(tx, verdict, author=str(me), network=network, thread=thread, field="edit",
                                         event_id=accepted.event_id)
            posted, sequenced_at = stored_view(original.wire)
        return SharedMessageOut(
            id=event_id, network=network, thread=thread, seq=original.seq,
            status="pending" if original.seq is None else "sequenced", sender=str(me),
            body="" if verdict is None else verdict.text, created_at=original.origin_ts, sequenced_at=sequenced_at,
            reply_to=posted.get("reply_to"), edited=verdict is not None, deleted=verdict is None,
            attachments=[] if verdict is None else _attachments_out(posted),
            data=None if verdict is None else posted.get("data"),
            redacted=(verdict.rules("redact") or None) if verdict is not None else None,
        )

    async def react(self, caller: Principal, network: str, thread: str, event_id: str, reaction: str, *,
                    removed: bool) -> ReactionOut:
        """Acknowledge a message ("seen", "working"), or take the acknowledgement back."""
        me = ParticipantId(caller.kind, caller.handle, self._engine.server)
        async with self._storage.transaction() as tx:
            await _message(tx, str(me), network, thread, event_id)
            accepted = await self._engine.author(tx, network, thread=thread, sender=me, content=MessageReacted(
                event_id=event_id, reaction=reaction, removed=True if removed else None))
        return ReactionOut(id=accepted.event_id, message=event_id, reaction=reaction, participant=str(me),
                           removed=removed)

    @staticmethod
    async def _held_back(tx: NetworkTransaction, network: str, thread: str) -> bool:
        record = await tx.consents.find(network, thread)
        return record is not None and record.status != "accepted"


async def _message(tx: NetworkTransaction, me: str, network: str, thread: str, event_id: str) -> StoredEvent:
    """A message of a shared thread `me` takes part in, or 404."""
    network_id = await thread_network_id(tx, me, network, thread)
    original = await tx.events.find(event_id)
    if (original is None or original.network_id != network_id or original.thread != thread
            or original.type != "message.posted"):
        raise NotFoundError(f"no message {event_id} in {network}/{thread}")
    return original


@dataclass(slots=True)
class _Changes:
    """What later events did to the messages of a thread, in the host's order."""

    edits: dict[str, str] = field(default_factory=dict)  # latest body by message
    earlier: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # bodies an edit replaced, and when
    deletes: set[str] = field(default_factory=set)
    reactions: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # message -> reaction -> who


async def _latest_changes(tx: NetworkTransaction, network_id: int, thread: str) -> _Changes:
    changes = _Changes()
    for change in await tx.events.changes_in_thread(network_id, thread):
        content, _ = stored_view(change.wire)
        target = content["event_id"]
        if change.type == "message.deleted":
            changes.deletes.add(target)
        elif change.type == "message.edited":
            changes.earlier.setdefault(target, []).append((changes.edits.get(target, ""), change.origin_ts))
            changes.edits[target] = content["body"]
        else:
            who = changes.reactions.setdefault(target, {}).setdefault(content["reaction"], [])
            if content.get("removed"):
                if change.sender in who:
                    who.remove(change.sender)
            elif change.sender not in who:
                who.append(change.sender)
    return changes


def _attachments_out(content: dict[str, Any]) -> list[AttachmentOut]:
    return [AttachmentOut(position=i, **a) for i, a in enumerate(content.get("attachments", []))]


def _participants(ids: list[str] | None) -> tuple[ParticipantId, ...] | None:
    """Mentions as the protocol names them (repeats dropped, order kept); None for none."""
    if not ids:
        return None
    try:
        return tuple(ParticipantId.parse(i) for i in dict.fromkeys(ids))
    except InvalidIdentifier as e:  # the API's pattern is looser than the protocol's server names
        raise InvalidRequest("a mention is not a participant id", [
            {"field": "mentions", "location": "body", "message": str(e)}]) from None


def _message_out(stored: StoredEvent, network: str, thread: str, me: str, delivery: dict[int, dict[str, str]],
                 changes: _Changes) -> SharedMessageOut:
    """A stored `message.posted` as the caller sees it: its latest body, or a tombstone."""
    content, sequenced_at = stored_view(stored.wire)
    deleted = stored.event_id in changes.deletes
    reactions = {r: who for r, who in changes.reactions.get(stored.event_id, {}).items() if who}
    history = None
    if stored.event_id in changes.earlier and not deleted and stored.origin == me.rsplit("@", 1)[1]:
        # The author's company sees what its edits replaced: the first body, then each edit's.
        replaced = changes.earlier[stored.event_id]
        history = [EditOut(body=content["body"] if i == 0 else body, replaced_at=at)
                   for i, (body, at) in enumerate(replaced)]
    return SharedMessageOut(
        id=stored.event_id, network=network, thread=thread, seq=stored.seq,
        status="pending" if stored.seq is None else "sequenced", sender=stored.sender,
        body="" if deleted else changes.edits.get(stored.event_id, content["body"]),
        created_at=stored.origin_ts, sequenced_at=sequenced_at,
        delivery=delivery.get(stored.row_id) if stored.sender == me else None,
        reply_to=content.get("reply_to"), mentions=content.get("mentions", []),
        attachments=[] if deleted else _attachments_out(content), data=None if deleted else content.get("data"),
        reactions={} if deleted else reactions,
        edited=stored.event_id in changes.edits and not deleted, deleted=deleted, history=history,
    )

