"""Who may do what in a network: pure functions over an immutable ``NetworkState``.

Every network has one owner, the host, because a shared space with no owner (Matrix) has to
resolve conflicting histories after the fact; with an owner, a conflict is just an event the
host refuses. The same rules run in three places: on the author's node before sending (so a
refusal is immediate and local), on the host before it sequences (the decision that counts),
and on members replaying the chain (so a misbehaving host is noticed).

``authorize(state, event, via=...)`` returns nothing or raises ``RuleViolation`` with a stable
``reason``; ``apply(state, event)`` returns the next state and assumes ``authorize`` passed.
Checks common to every type run first, in this order, so the reason is predictable:
``wrong_network``, ``network_closed``, ``wrong_origin`` (sender not hosted by origin),
``wrong_relay`` (delivered by neither origin nor host), ``not_a_member`` (the origin left,
was removed or was never admitted). Then one rule per event type, kept in ``_RULES``.

Choices worth knowing:

- ``operator:…`` senders are a company's operators: they drive the lifecycle (create, admit,
  attach, open and close threads, leave, close) but are never attached, so they never post.
- A company that leaves or is removed has all its participants detached at once; being
  admitted again does not re-attach them.
- A thread's participants are set when it opens; a participant (or an operator of the host or
  of the opener's company) may add more (``thread.joined``), never remove one. Detaching keeps
  a participant in the set (history still shows who took part) but stops them posting.
- A thread is closed by whoever opened it, by its company's operators, or by the host's
  operators; no one else, so a member cannot end a conversation another company started.
- The host's operators can silence agents in a thread (``thread.silenced``): from then on
  only people write there (posts, edits and deletes), on every node, until they lift it.
- Edits and deletes belong to the author's company: any attached thread participant of the
  original message's origin may make them.
- Messages are not kept in the state (it would grow with every post and make replay
  quadratic). Edits, deletes and replies look the original up through ``messages``, which
  the node backs with storage; without it they are refused as ``unknown_event``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import cast

from federation.errors import RuleViolation
from federation.event_content import (
    MAX_THREAD_PARTICIPANTS,
    MemberAdmitted,
    MemberLeft,
    MemberRemoved,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    MessageReacted,
    NetworkCreated,
    ParticipantAttached,
    ParticipantDetached,
    ThreadJoined,
    ThreadOpened,
    ThreadSilenced,
)
from federation.events import Event
from federation.network_state import MemberStatus, MessageLookup, MessageRecord, NetworkState, ThreadState

__all__ = [
    "MemberStatus",
    "MessageLookup",
    "MessageRecord",
    "NetworkState",
    "ThreadState",
    "apply",
    "authorize",
    "initial_state",
    "recipients",
]

def initial_state(created: Event) -> NetworkState:
    """The state right after ``network.created``; its origin becomes the host."""
    if not isinstance(created.content, NetworkCreated):
        raise RuleViolation("not_network_created", "a network starts with network.created")
    if created.sender.server != created.origin:
        raise RuleViolation("wrong_origin", "sender is not hosted by the origin")
    return NetworkState(
        name=created.network,
        host=created.origin,
        title=created.content.title,
        history_visible_to_new_members=created.content.history_visible_to_new_members,
        members={created.origin: "member"},
    )


def recipients(state: NetworkState) -> frozenset[str]:
    """Servers that get fan-out: current members only (the host included)."""
    return frozenset(server for server, status in state.members.items() if status == "member")


def authorize(
    state: NetworkState, event: Event, *, via: str, messages: MessageLookup | None = None
) -> None:
    """Raise ``RuleViolation`` unless ``event``, delivered by server ``via``, is allowed."""
    if event.network != state.name:
        raise RuleViolation("wrong_network", f"event is for network {event.network}")
    if state.closed:
        raise RuleViolation("network_closed")
    if event.sender.server != event.origin:
        raise RuleViolation("wrong_origin", "sender is not hosted by the origin")
    if via not in (event.origin, state.host):
        raise RuleViolation("wrong_relay", "only the origin or the host may deliver an event")
    if not state.is_member(event.origin):
        raise RuleViolation("not_a_member", f"{event.origin} is not a member of the network")
    rule = _RULES.get(event.type)
    if rule is None:
        raise RuleViolation("already_created", "the network already exists")
    rule.check(state, event, messages or _no_messages)


def apply(state: NetworkState, event: Event) -> NetworkState:
    """Return the state after an authorized ``event``; ``state`` itself is left untouched."""
    return _RULES[event.type].apply(state, event)


def _no_messages(event_id: str) -> MessageRecord | None:
    return None


# --- membership -------------------------------------------------------------------------


def _require_host(state: NetworkState, event: Event) -> None:
    if event.origin != state.host:
        raise RuleViolation("not_host", "only the host may do this")


def _check_admit(state: NetworkState, event: Event, _: MessageLookup) -> None:
    _require_host(state, event)
    if state.is_member(cast(MemberAdmitted, event.content).server):
        raise RuleViolation("already_member")


def _check_remove(state: NetworkState, event: Event, _: MessageLookup) -> None:
    _require_host(state, event)
    server = cast(MemberRemoved, event.content).server
    if server == state.host:
        raise RuleViolation("host_cannot_leave", "the host cannot remove itself")
    if not state.is_member(server):
        raise RuleViolation("target_not_member", f"{server} is not a member")


def _check_leave(state: NetworkState, event: Event, _: MessageLookup) -> None:
    if cast(MemberLeft, event.content).server != event.origin:
        raise RuleViolation("not_own_company", "a company can only leave for itself")
    if event.origin == state.host:
        raise RuleViolation("host_cannot_leave", "the host closes the network instead")


def _check_close_network(state: NetworkState, event: Event, _: MessageLookup) -> None:
    _require_host(state, event)


def _apply_admit(state: NetworkState, event: Event) -> NetworkState:
    return _set_member(state, cast(MemberAdmitted, event.content).server, "member")


def _apply_remove(state: NetworkState, event: Event) -> NetworkState:
    return _set_member(state, cast(MemberRemoved, event.content).server, "removed")


def _apply_leave(state: NetworkState, event: Event) -> NetworkState:
    return _set_member(state, event.origin, "left")


def _apply_close_network(state: NetworkState, event: Event) -> NetworkState:
    return replace(state, closed=True)


def _set_member(state: NetworkState, server: str, status: MemberStatus) -> NetworkState:
    participants = {
        p: attached and (status == "member" or p.server != server)
        for p, attached in state.participants.items()
    }
    return replace(state, members={**state.members, server: status}, participants=participants)


# --- participants -----------------------------------------------------------------------


def _check_attach(state: NetworkState, event: Event, _: MessageLookup) -> None:
    participant = cast(ParticipantAttached, event.content).participant
    if participant.is_operator:
        raise RuleViolation("not_attachable", "operators act for their company; they are not attached")
    if participant.server != event.origin:
        raise RuleViolation("not_own_participant", "a company attaches only its own participants")
    if state.is_attached(participant):
        raise RuleViolation("already_attached")


def _check_detach(state: NetworkState, event: Event, _: MessageLookup) -> None:
    participant = cast(ParticipantDetached, event.content).participant
    if participant.server != event.origin:
        raise RuleViolation("not_own_participant", "a company detaches only its own participants")
    if not state.is_attached(participant):
        raise RuleViolation("not_attached", f"{participant} is not attached")


def _apply_attach(state: NetworkState, event: Event) -> NetworkState:
    participant = cast(ParticipantAttached, event.content).participant
    return replace(state, participants={**state.participants, participant: True})


def _apply_detach(state: NetworkState, event: Event) -> NetworkState:
    participant = cast(ParticipantDetached, event.content).participant
    return replace(state, participants={**state.participants, participant: False})


# --- threads and messages ---------------------------------------------------------------


def _check_open_thread(state: NetworkState, event: Event, _: MessageLookup) -> None:
    content = cast(ThreadOpened, event.content)
    if event.thread in state.threads:
        raise RuleViolation("thread_exists", f"thread {event.thread} already exists")
    if not event.sender.is_operator:  # an operator opens threads for others to talk in
        if not state.is_attached(event.sender):
            raise RuleViolation("not_attached", f"{event.sender} is not attached")
        if event.sender not in content.participants:
            raise RuleViolation("not_a_participant", "the opener must be one of the participants")
    for participant in content.participants:
        if not state.is_attached(participant):
            raise RuleViolation("participant_not_attached", f"{participant} is not attached")


def _open_thread_of(state: NetworkState, event: Event) -> ThreadState:
    """The event's thread, which must exist and be open."""
    thread = state.threads.get(cast(str, event.thread))
    if thread is None:
        raise RuleViolation("unknown_thread", f"no thread {event.thread}")
    if not thread.open:
        raise RuleViolation("thread_closed", f"thread {event.thread} is closed")
    return thread


def _check_join(state: NetworkState, event: Event, _: MessageLookup) -> None:
    thread = _open_thread_of(state, event)
    if event.sender.is_operator:
        if event.origin not in (state.host, thread.opened_by.server):
            raise RuleViolation("not_thread_owner", f"only the host's operators ({state.host}) or those of the "
                                f"company that opened {event.thread} ({thread.opened_by.server}) may add to it")
    elif not state.is_attached(event.sender) or event.sender not in thread.participants:
        raise RuleViolation("not_a_participant", f"{event.sender} is not in {event.thread}")
    added = cast(ThreadJoined, event.content).participants
    for participant in added:
        if not state.is_attached(participant):
            raise RuleViolation("participant_not_attached", f"{participant} is not attached")
        if participant in thread.participants:
            raise RuleViolation("already_participant", f"{participant} is already in {event.thread}")
    if len(thread.participants) + len(added) > MAX_THREAD_PARTICIPANTS:
        raise RuleViolation("too_many_participants", f"a thread has at most {MAX_THREAD_PARTICIPANTS} participants")


def _require_poster(state: NetworkState, event: Event) -> None:
    """The sender may write into ``event.thread``: it exists, is open, and they take part."""
    thread = _open_thread_of(state, event)
    if not state.is_attached(event.sender):
        raise RuleViolation("not_attached", f"{event.sender} is not attached")
    if event.sender not in thread.participants:
        raise RuleViolation("not_a_participant", f"{event.sender} is not in {event.thread}")
    if thread.agents_silenced and event.sender.kind == "agent":
        raise RuleViolation("agents_silenced", f"the host silenced agents in {event.thread}: only people may write")


def _check_close_thread(state: NetworkState, event: Event, _: MessageLookup) -> None:
    thread = state.threads.get(cast(str, event.thread))
    if thread is None:
        raise RuleViolation("unknown_thread", f"no thread {event.thread}")
    if not thread.open:
        raise RuleViolation("thread_closed", f"thread {event.thread} is already closed")
    if event.sender == thread.opened_by:
        return  # whoever opened it
    if event.sender.is_operator and event.origin in (state.host, thread.opened_by.server):
        return  # the host's operators, and those of the company that opened it
    raise RuleViolation("not_thread_owner", f"only the host ({state.host}) or the company that opened "
                        f"{event.thread} ({thread.opened_by.server}) may close it")


def _check_silence(state: NetworkState, event: Event, _: MessageLookup) -> None:
    thread = _open_thread_of(state, event)
    if not (event.sender.is_operator and event.origin == state.host):
        raise RuleViolation("not_host", f"only the host's operators ({state.host}) may silence agents")
    agents = cast(ThreadSilenced, event.content).agents
    if thread.agents_silenced == agents:
        raise RuleViolation("unchanged", f"agents are already {'silenced' if agents else 'allowed'} in {event.thread}")


def _check_post(state: NetworkState, event: Event, messages: MessageLookup) -> None:
    _require_poster(state, event)
    thread = state.threads[cast(str, event.thread)]  # _require_poster found it
    for mentioned in cast(MessagePosted, event.content).mentions or ():
        if mentioned not in thread.participants:
            raise RuleViolation("mention_not_participant", f"{mentioned} is not in {event.thread}")
    reply_to = cast(MessagePosted, event.content).reply_to
    if reply_to is not None:
        original = messages(reply_to)
        if original is None or original.thread != event.thread:
            raise RuleViolation("unknown_event", f"no message {reply_to} in this thread")


def _check_change_message(state: NetworkState, event: Event, messages: MessageLookup) -> None:
    _require_poster(state, event)
    target = cast(MessageEdited | MessageDeleted, event.content).event_id
    original = messages(target)
    if original is None or original.thread != event.thread:
        raise RuleViolation("unknown_event", f"no message {target} in this thread")
    if original.deleted:
        raise RuleViolation("message_deleted", f"message {target} was deleted")
    if original.origin != event.origin:
        raise RuleViolation("not_author_company", "only the author's company may change it")


def _check_reaction(state: NetworkState, event: Event, messages: MessageLookup) -> None:
    _require_poster(state, event)
    target = cast(MessageReacted, event.content).event_id
    original = messages(target)
    if original is None or original.thread != event.thread:
        raise RuleViolation("unknown_event", f"no message {target} in this thread")
    if original.deleted:
        raise RuleViolation("message_deleted", f"message {target} was deleted")


def _open_thread(state: NetworkState, event: Event) -> NetworkState:
    participants = frozenset(cast(ThreadOpened, event.content).participants)
    thread = ThreadState(open=True, participants=participants, opened_by=event.sender)
    return replace(state, threads={**state.threads, cast(str, event.thread): thread})


def _join_thread(state: NetworkState, event: Event) -> NetworkState:
    name = cast(str, event.thread)
    thread = state.threads[name]
    joined = replace(thread, participants=thread.participants | frozenset(cast(ThreadJoined, event.content).participants))
    return replace(state, threads={**state.threads, name: joined})


def _close_thread(state: NetworkState, event: Event) -> NetworkState:
    name = cast(str, event.thread)
    closed = replace(state.threads[name], open=False)
    return replace(state, threads={**state.threads, name: closed})


def _silence(state: NetworkState, event: Event) -> NetworkState:
    name = cast(str, event.thread)
    silenced = replace(state.threads[name], agents_silenced=cast(ThreadSilenced, event.content).agents)
    return replace(state, threads={**state.threads, name: silenced})


def _unchanged(state: NetworkState, event: Event) -> NetworkState:
    return state


# --- registry ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    check: Callable[[NetworkState, Event, MessageLookup], None]
    apply: Callable[[NetworkState, Event], NetworkState]


_RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        "member.admitted": _Rule(_check_admit, _apply_admit),
        "member.removed": _Rule(_check_remove, _apply_remove),
        "member.left": _Rule(_check_leave, _apply_leave),
        "network.closed": _Rule(_check_close_network, _apply_close_network),
        "participant.attached": _Rule(_check_attach, _apply_attach),
        "participant.detached": _Rule(_check_detach, _apply_detach),
        "thread.opened": _Rule(_check_open_thread, _open_thread),
        "thread.joined": _Rule(_check_join, _join_thread),
        "thread.closed": _Rule(_check_close_thread, _close_thread),
        "thread.silenced": _Rule(_check_silence, _silence),
        "message.posted": _Rule(_check_post, _unchanged),
        "message.edited": _Rule(_check_change_message, _unchanged),
        "message.deleted": _Rule(_check_change_message, _unchanged),
        "message.reacted": _Rule(_check_reaction, _unchanged),
    }
)
