"""Delivery of one event to one peer, as a state machine declared as data.

Each outbox row (one event, one peer) is in one of four states::

    pending ──claim──▶ in_flight ──succeed──▶ delivered ◀──confirm── pending, in_flight, failed
       ▲                  │ │
       └──retry/requeue───┘ └──reject──▶ failed ◀──cancel── pending, in_flight

- ``retry``: an attempt failed for a reason that may pass (timeout, 5xx, 429): back to
  pending with one more try; the destination's backoff says when.
- ``requeue``: the restart path. A row found in flight when the node starts was cut off
  mid-send, so it goes back without counting a try (the receiver dedups by event id).
- ``reject``: the peer refused this event for good (a 4xx no retry can fix), so one bad event
  never blocks the rest.
- ``confirm``: the host's sequenced copy of the event reached this node, so the event got
  where it was going, whatever a send still in flight (or one that failed) says.
- ``cancel``: an operator blocked the destination, or it left the network.

`storage.network.outbox` builds every statement that changes a row's state from this table
(`moving`), so a move that is not declared here cannot be written.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["OPEN_STATES", "TERMINAL_STATES", "TRANSITIONS", "DeliveryAction", "DeliveryState", "Transition",
           "transition"]


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryAction(enum.StrEnum):
    CLAIM = "claim"
    SUCCEED = "succeed"
    CONFIRM = "confirm"
    RETRY = "retry"
    REJECT = "reject"
    REQUEUE = "requeue"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Transition:
    """One legal move from any of ``sources``; ``counts_try`` says whether it ends an attempt
    that failed."""

    sources: frozenset[DeliveryState]
    target: DeliveryState
    counts_try: bool


_S = DeliveryState
TRANSITIONS: Mapping[DeliveryAction, Transition] = MappingProxyType({
    DeliveryAction.CLAIM: Transition(frozenset({_S.PENDING}), _S.IN_FLIGHT, counts_try=False),
    DeliveryAction.SUCCEED: Transition(frozenset({_S.IN_FLIGHT}), _S.DELIVERED, counts_try=False),
    DeliveryAction.CONFIRM: Transition(frozenset({_S.PENDING, _S.IN_FLIGHT, _S.FAILED}), _S.DELIVERED,
                                       counts_try=False),
    DeliveryAction.RETRY: Transition(frozenset({_S.IN_FLIGHT}), _S.PENDING, counts_try=True),
    DeliveryAction.REJECT: Transition(frozenset({_S.IN_FLIGHT}), _S.FAILED, counts_try=True),
    DeliveryAction.REQUEUE: Transition(frozenset({_S.IN_FLIGHT}), _S.PENDING, counts_try=False),
    DeliveryAction.CANCEL: Transition(frozenset({_S.PENDING, _S.IN_FLIGHT}), _S.FAILED, counts_try=False),
})
# Rows still on their way: what a destination's queue depth counts.
OPEN_STATES = frozenset({_S.PENDING, _S.IN_FLIGHT})
# Delivered is final; failed ends only when the event turns out to have arrived anyway.
TERMINAL_STATES = frozenset(state for state in DeliveryState
                            if all(state not in t.sources for t in TRANSITIONS.values()))


def transition(state: DeliveryState | str, action: DeliveryAction | str) -> DeliveryState:
    """The state after ``action``; ``ValueError`` if the move is not in ``TRANSITIONS``."""
    current = DeliveryState(state)
    move = TRANSITIONS[DeliveryAction(action)]
    if current not in move.sources:
        raise ValueError(f"cannot {DeliveryAction(action)} an outbox row that is {current}")
    return move.target
