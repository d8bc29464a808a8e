"""The state the rules (`federation.rules`) read and produce: immutable values, rebuilt by
replaying a network's chain, so every node that replays the same events holds the same state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from federation.identifiers import ParticipantId

__all__ = ["MemberStatus", "MessageLookup", "MessageRecord", "NetworkState", "ThreadState"]

MemberStatus = Literal["member", "left", "removed"]


@dataclass(frozen=True, slots=True)
class ThreadState:
    open: bool
    participants: frozenset[ParticipantId]
    opened_by: ParticipantId  # the sender of thread.opened: it, and its company's operators, may close it
    agents_silenced: bool = False  # thread.silenced: only people may write


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """What the rules need to know about an earlier ``message.posted``."""

    origin: str
    thread: str
    deleted: bool = False


MessageLookup = Callable[[str], MessageRecord | None]
"""``event_id -> MessageRecord`` of a posted message in this network, or ``None``."""


@dataclass(frozen=True, slots=True)
class NetworkState:
    name: str
    host: str
    title: str
    history_visible_to_new_members: bool
    closed: bool = False
    members: Mapping[str, MemberStatus] = field(default_factory=dict)
    participants: Mapping[ParticipantId, bool] = field(default_factory=dict)  # id -> attached
    threads: Mapping[str, ThreadState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Private read-only copies: no caller can change a state after building it.
        for name in ("members", "participants", "threads"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def is_member(self, server: str) -> bool:
        return self.members.get(server) == "member"

    def is_attached(self, participant: ParticipantId) -> bool:
        return self.participants.get(participant, False)
