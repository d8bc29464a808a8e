"""A network's rule state, rebuilt from its stored events and cached by chain head.

Events are verified once, when they arrive; replaying them here only re-applies the rules'
state transitions. The cache is keyed by the head sequence number, so a node process that
finds the database ahead of its cache (another process sequenced meanwhile) rebuilds.

A state reached inside a transaction is seen by that transaction at once, and by the cache
only when it commits: a transaction that rolls back (a refused event in a batch) leaves the
cache at the last committed head, not at a head the database never had.
"""

from __future__ import annotations

import json

from federation.canonical_json import parse_json
from federation.errors import RuleViolation
from federation.event_content import MessageDeleted, MessageEdited, MessagePosted, MessageReacted
from federation.events import Event, SignedEvent
from federation.rules import MessageLookup, MessageRecord, NetworkState, apply, authorize, initial_state
from federation.sequencing import SequencedEvent
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkTransaction

__all__ = ["STUB_TYPE", "StateCache", "decode_stored", "message_lookup", "stored_content", "stored_view"]

# The stored type of an event kept as a stub (`federation.sequencing.StubEvent`): a message of
# a network whose earlier history this node may not see, or whose body retention removed.
STUB_TYPE = "stub"

# Replay in pages so a long history never sits in memory as rows all at once.
_REPLAY_PAGE = 1000


def decode_stored(wire: bytes) -> SignedEvent | SequencedEvent:
    data = parse_json(wire)
    return SequencedEvent.from_wire(data) if "seq" in data else SignedEvent.from_wire(data)


def stored_content(wire: bytes) -> dict:
    """The content of a stored event, for showing it. Its wire form was checked in full when
    it was written here, so reading it back needs no strict parse and no models."""
    return json.loads(wire)["event"]["content"]


def stored_view(wire: bytes) -> tuple[dict, int | None]:
    """The content of a stored event and the host's time it was sequenced at (None while it
    is pending here), for showing them; as `stored_content`, without a strict parse."""
    data = json.loads(wire)
    return data["event"]["content"], data.get("host_ts")


class StateCache:
    def __init__(self) -> None:
        self._states: dict[str, tuple[int, NetworkState]] = {}

    async def created(self, tx: NetworkTransaction, network: NetworkRecord) -> NetworkState:
        """`at_head` of a network whose `network.created` is stored: every network a service or
        a later event names."""
        state = await self.at_head(tx, network)
        if state is None:
            raise RuntimeError(f"{network.name} holds no network.created event")
        return state

    async def at_head(self, tx: NetworkTransaction, network: NetworkRecord) -> NetworkState | None:
        """The state after the network's last sequenced event; None before its first."""
        cached = self._uncommitted(tx).get(network.name) or self._states.get(network.name)
        if cached is not None and cached[0] == network.head_seq:
            return cached[1]
        if cached is not None and cached[0] < network.head_seq:
            state, seq = cached[1], cached[0]
        else:
            state, seq = None, 0
        while seq < network.head_seq:
            page = await tx.events.after(network.id, seq, limit=_REPLAY_PAGE)
            if not page:
                break
            for stored in page:
                assert stored.seq is not None, "a page after a seq holds sequenced events"
                seq = stored.seq
                if stored.type == STUB_TYPE:  # a message this node may not see: no change to the state
                    continue
                event = decode_stored(stored.wire).event
                state = initial_state(event) if state is None else apply(state, event)
        if state is not None:
            self._states[network.name] = (seq, state)  # rebuilt from committed rows
        return state

    def remember(self, tx: NetworkTransaction, name: str, seq: int, state: NetworkState) -> None:
        """`state` is the network's after `seq`, in `tx`; the cache has it once `tx` commits."""
        uncommitted = self._uncommitted(tx)
        if name not in uncommitted:
            tx.after_commit(lambda: self._committed(name, uncommitted[name]))
        uncommitted[name] = (seq, state)

    def _committed(self, name: str, entry: tuple[int, NetworkState]) -> None:
        current = self._states.get(name)
        if current is None or current[0] <= entry[0]:
            self._states[name] = entry

    def _uncommitted(self, tx: NetworkTransaction) -> dict[str, tuple[int, NetworkState]]:
        return tx.memo.setdefault(self, {})  # type: ignore[return-value]

    def forget(self, name: str) -> None:
        self._states.pop(name, None)

    async def with_pending(self, tx: NetworkTransaction, network: NetworkRecord, *, via: str) -> NetworkState | None:
        """The state as this node expects it once the host sequences what we sent and is still
        pending: lets a member open a thread and post into it while the host is away."""
        state = await self.at_head(tx, network)
        if state is None:
            return None
        for stored in await tx.events.pending(network.id):
            event = decode_stored(stored.wire).event
            try:
                authorize(state, event, via=via, messages=await message_lookup(tx, network.id, event))
            except RuleViolation:
                continue
            state = apply(state, event)
        return state


async def message_lookup(tx: NetworkTransaction, network_id: int, event: Event, *,
                         sequenced_only: bool = False) -> MessageLookup:
    """Fetch the one earlier message an edit, delete, reaction or reply refers to, for the sync
    rules. `sequenced_only` for an event in the host's order: it is checked against the chain
    before it, never against this node's pending events (among them, on its author's node, itself)."""
    content = event.content
    target = None
    if isinstance(content, (MessageEdited, MessageDeleted, MessageReacted)):
        target = content.event_id
    elif isinstance(content, MessagePosted):
        target = content.reply_to
    record: MessageRecord | None = None
    if target is not None:
        stored = await tx.events.find(target)
        # A stub's thread and origin are the host's word (federation.sequencing.StubEvent).
        if (stored is not None and stored.network_id == network_id and stored.type in ("message.posted", STUB_TYPE)
                and stored.thread is not None):
            deleted = await tx.events.is_deleted(network_id, stored.thread, target, sequenced_only=sequenced_only)
            record = MessageRecord(origin=stored.origin, thread=stored.thread, deleted=deleted)

    def lookup(event_id: str) -> MessageRecord | None:
        return record if event_id == target else None

    return lookup
