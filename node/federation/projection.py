"""Keep the queryable tables (members, participants, shared threads) in step with a network's
rule state, one event at a time, inside the transaction that stores the event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from federation.event_content import (
    MemberAdmitted,
    MemberLeft,
    MemberRemoved,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    ParticipantAttached,
    ParticipantDetached,
    ThreadJoined,
    ThreadOpened,
    ThreadSilenced,
)
from federation.events import Event
from federation.rules import NetworkState
from storage.network.transaction import NetworkTransaction

__all__ = ["project"]

Projector = Callable[[NetworkTransaction, int, Event, NetworkState, int, str], Awaitable[None]]


async def _created(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                   now: int, event_id: str) -> None:
    await tx.networks.set_member(network_id, state.host, "member", now=now)


async def _membership(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                      now: int, event_id: str) -> None:
    content = cast(MemberAdmitted | MemberRemoved | MemberLeft, event.content)
    await tx.networks.set_member(network_id, content.server, state.members[content.server], now=now)
    # Leaving or removal detaches the company's participants (federation.rules).
    current = await tx.networks.participants(network_id)
    for participant, attached in state.participants.items():
        name = str(participant)
        if participant.server == content.server and name in current and current[name][1] != attached:
            await tx.networks.set_participant(network_id, name, display_name=current[name][0], attached=attached)


async def _closed(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                  now: int, event_id: str) -> None:
    await tx.networks.set_closed(network_id, True)


async def _attached(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                    now: int, event_id: str) -> None:
    content = cast(ParticipantAttached, event.content)
    await tx.networks.set_participant(network_id, str(content.participant), display_name=content.display_name,
                                      attached=True)


async def _detached(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                    now: int, event_id: str) -> None:
    name = str(cast(ParticipantDetached, event.content).participant)
    current = await tx.networks.participants(network_id)
    await tx.networks.set_participant(network_id, name, display_name=current[name][0], attached=False)


async def _thread_opened(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                         now: int, event_id: str) -> None:
    content = cast(ThreadOpened, event.content)
    await tx.networks.open_thread(network_id, name=cast(str, event.thread), title=content.title,
                                  participants=[str(p) for p in content.participants], now=now)


async def _thread_joined(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                         now: int, event_id: str) -> None:
    await tx.networks.add_thread_participants(network_id, cast(str, event.thread),
                                              [str(p) for p in cast(ThreadJoined, event.content).participants])


async def _thread_closed(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                         now: int, event_id: str) -> None:
    await tx.networks.close_thread(network_id, cast(str, event.thread))


async def _thread_silenced(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                           now: int, event_id: str) -> None:
    await tx.networks.set_agents_silenced(network_id, cast(str, event.thread),
                                          cast(ThreadSilenced, event.content).agents)


async def _nothing(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                   now: int, event_id: str) -> None:
    return None


async def _message_posted(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                          now: int, event_id: str) -> None:
    await tx.message_text.put(network_id, event_id, cast(str, event.thread),
                              cast(MessagePosted, event.content).body)


async def _message_edited(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                          now: int, event_id: str) -> None:
    content = cast(MessageEdited, event.content)
    await tx.message_text.edit(content.event_id, content.body)


async def _message_deleted(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState,
                           now: int, event_id: str) -> None:
    # A deleted message's text and files go with it, from every node that held them.
    target = cast(MessageDeleted, event.content).event_id
    await tx.message_text.remove(target)
    await tx.files.remove_for_event(target)


_PROJECTORS: dict[str, Projector] = {
    "network.created": _created,
    "member.admitted": _membership,
    "member.removed": _membership,
    "member.left": _membership,
    "network.closed": _closed,
    "participant.attached": _attached,
    "participant.detached": _detached,
    "thread.opened": _thread_opened,
    "thread.joined": _thread_joined,
    "thread.closed": _thread_closed,
    "thread.silenced": _thread_silenced,
    "message.posted": _message_posted,
    "message.edited": _message_edited,
    "message.deleted": _message_deleted,
    "message.reacted": _nothing,
}


async def project(tx: NetworkTransaction, network_id: int, event: Event, state: NetworkState, *, now: int,
                  event_id: str) -> None:
    await _PROJECTORS[event.type](tx, network_id, event, state, now, event_id)
