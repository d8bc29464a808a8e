"""Delivery of one event to one peer, as an explicit state machine declared as data.

Each outbox row (one event, one peer) is in one of four states::

    pending ──claim──▶ in_flight ──succeed──▶ delivered
       ▲                  │ │
       └──retry/requeue───┘ └──reject──▶ failed

``retry`` is an attempt that failed for a reason that may pass (timeout, 5xx, the peer's
circuit open): the row goes back to pending with one more try and a later next attempt.
``requeue`` is the restart path: a row found in flight when the node starts was cut off
mid-send, so it goes back without counting a try (the receiver dedups by event id, so
sending it twice is harmless). ``reject`` is the peer refusing this event for good (a 4xx
that no retry can fix); the row ends in ``failed`` so one bad event never blocks the rest.

Storage holds the rows and the row locks; this module only says which moves are legal, how
long to wait before the next try, and when a peer is too broken to try at all
(``CircuitBreaker``). Like the rest of the core, it takes the time and the randomness as
arguments, so tests move the clock and fix the seed instead of sleeping.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "BREAKER_FAILURE_THRESHOLD",
    "RETRY_BASE_MS",
    "RETRY_CAP_MS",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "CircuitBreaker",
    "DeliveryAction",
    "DeliveryState",
    "Transition",
    "backoff_ceiling_ms",
    "retry_delay_ms",
    "transition",
]

# The first retry comes after 0-500 ms: long enough not to hammer a peer that is restarting,
# short enough that a single dropped connection costs no visible delay.
RETRY_BASE_MS = 500
# Five minutes: how stale a recovered peer's copy can get while we back off. A peer that comes
# back calls us, and we retry at once, so the cap only bounds the load a dead peer costs: one
# attempt every 2.5 minutes on average. The ceiling reaches it at the 11th failure.
RETRY_CAP_MS = 300_000
# Five failures in a row, the last ones seconds apart, mean the peer is down, not blipping;
# from then on one probe per backoff window replaces a send per queued event.
BREAKER_FAILURE_THRESHOLD = 5


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryAction(enum.StrEnum):
    CLAIM = "claim"
    SUCCEED = "succeed"
    RETRY = "retry"
    REJECT = "reject"
    REQUEUE = "requeue"


@dataclass(frozen=True, slots=True)
class Transition:
    """One legal move; ``counts_try`` says whether it ends an attempt that failed."""

    source: DeliveryState
    target: DeliveryState
    counts_try: bool


_S = DeliveryState
TRANSITIONS: Mapping[DeliveryAction, Transition] = MappingProxyType(
    {
        DeliveryAction.CLAIM: Transition(_S.PENDING, _S.IN_FLIGHT, counts_try=False),
        DeliveryAction.SUCCEED: Transition(_S.IN_FLIGHT, _S.DELIVERED, counts_try=False),
        DeliveryAction.RETRY: Transition(_S.IN_FLIGHT, _S.PENDING, counts_try=True),
        DeliveryAction.REJECT: Transition(_S.IN_FLIGHT, _S.FAILED, counts_try=True),
        DeliveryAction.REQUEUE: Transition(_S.IN_FLIGHT, _S.PENDING, counts_try=False),
    }
)
TERMINAL_STATES = frozenset(
    state for state in DeliveryState if all(t.source != state for t in TRANSITIONS.values())
)


def transition(state: DeliveryState | str, action: DeliveryAction | str) -> DeliveryState:
    """The state after ``action``; ``ValueError`` if the move is not in ``TRANSITIONS``."""
    current = DeliveryState(state)
    move = TRANSITIONS[DeliveryAction(action)]
    if move.source != current:
        raise ValueError(f"cannot {action} an outbox row that is {current}")
    return move.target


def backoff_ceiling_ms(
    tries: int, *, base_ms: int = RETRY_BASE_MS, cap_ms: int = RETRY_CAP_MS
) -> int:
    """``min(cap, base * 2 ** (tries - 1))``: the longest wait after ``tries`` failures."""
    if type(tries) is not int or tries < 1:
        raise ValueError("tries counts failed attempts and starts at 1")
    if base_ms < 1 or cap_ms < base_ms:
        raise ValueError("need 1 <= base_ms <= cap_ms")
    # Past cap's bit length the doubling is capped anyway; stop before 2**tries gets huge.
    exponent = min(tries - 1, cap_ms.bit_length())
    return min(cap_ms, base_ms << exponent)


def retry_delay_ms(
    tries: int, *, rng: random.Random, base_ms: int = RETRY_BASE_MS, cap_ms: int = RETRY_CAP_MS
) -> int:
    """How long to wait after ``tries`` failed attempts: uniform in ``[0, ceiling]``.

    "Full jitter" (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015): when a
    peer comes back, the senders of every other node spread their retries over the whole
    window instead of arriving together, at the cost of sometimes retrying early.
    """
    return rng.randint(0, backoff_ceiling_ms(tries, base_ms=base_ms, cap_ms=cap_ms))


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Per-peer health as a value: closed, open, or half-open (one probe allowed).

    Closed while fewer than ``BREAKER_FAILURE_THRESHOLD`` attempts in a row have failed.
    Then it opens: no attempt until ``next_probe_ms``, when it turns half-open and lets one
    probe through. A failed probe reopens it for the next backoff ceiling (twice as long, up
    to the retry cap); a success closes it. "One" probe relies on the sender running one
    send per peer at a time, which the delivery worker guarantees.
    """

    consecutive_failures: int = 0
    next_probe_ms: int = 0

    def allows_attempt(self, now_ms: int) -> bool:
        if self.consecutive_failures < BREAKER_FAILURE_THRESHOLD:
            return True
        return now_ms >= self.next_probe_ms

    def state_at(self, now_ms: int) -> str:
        """``closed``, ``open`` or ``half_open``: for operators' delivery status."""
        if self.consecutive_failures < BREAKER_FAILURE_THRESHOLD:
            return "closed"
        return "half_open" if now_ms >= self.next_probe_ms else "open"

    def after_failure(self, now_ms: int) -> CircuitBreaker:
        failures = self.consecutive_failures + 1
        if failures < BREAKER_FAILURE_THRESHOLD:
            return CircuitBreaker(failures, 0)
        # The window continues the retry backoff where it stands (8 s after the fifth failure,
        # then 16 s... up to the cap). No jitter: it times one probe per peer, not a stream of
        # retries, so nodes probing at once cost the peer one request each.
        return CircuitBreaker(failures, now_ms + backoff_ceiling_ms(failures))

    def after_success(self) -> CircuitBreaker:
        return CircuitBreaker()
