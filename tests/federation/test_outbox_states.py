from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.outbox_states import (
    BREAKER_FAILURE_THRESHOLD,
    RETRY_BASE_MS,
    RETRY_CAP_MS,
    TERMINAL_STATES,
    TRANSITIONS,
    CircuitBreaker,
    DeliveryAction,
    DeliveryState,
    backoff_ceiling_ms,
    retry_delay_ms,
    transition,
)

S, A = DeliveryState, DeliveryAction

# --- the state machine ------------------------------------------------------------------

LEGAL = {
    (S.PENDING, A.CLAIM): S.IN_FLIGHT,
    (S.IN_FLIGHT, A.SUCCEED): S.DELIVERED,
    (S.IN_FLIGHT, A.RETRY): S.PENDING,
    (S.IN_FLIGHT, A.REJECT): S.FAILED,
    (S.IN_FLIGHT, A.REQUEUE): S.PENDING,
}


@pytest.mark.parametrize("state,action", list(itertools.product(S, A)))
def test_every_move_is_either_declared_or_refused(state: S, action: A) -> None:
    if (state, action) in LEGAL:
        assert transition(state, action) == LEGAL[state, action]
        assert transition(state.value, action.value) == LEGAL[state, action]  # as stored
    else:
        with pytest.raises(ValueError):
            transition(state, action)


def test_terminal_states_have_no_way_out() -> None:
    assert TERMINAL_STATES == {S.DELIVERED, S.FAILED}


def test_only_failed_attempts_count_as_tries() -> None:
    assert {a for a, t in TRANSITIONS.items() if t.counts_try} == {A.RETRY, A.REJECT}


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[A.CLAIM] = TRANSITIONS[A.SUCCEED]  # type: ignore[index]


@pytest.mark.parametrize("state,action", [("sent", "claim"), ("pending", "send"), ("", "")])
def test_unknown_names_are_refused(state: str, action: str) -> None:
    with pytest.raises(ValueError):
        transition(state, action)


def test_states_are_plain_strings_for_storage() -> None:
    assert [s.value for s in S] == ["pending", "in_flight", "delivered", "failed"]
    assert S.IN_FLIGHT == "in_flight"


# --- backoff ----------------------------------------------------------------------------


def test_ceiling_doubles_from_base_to_cap() -> None:
    ceilings = [backoff_ceiling_ms(tries) for tries in range(1, 13)]
    assert ceilings[:3] == [RETRY_BASE_MS, 2 * RETRY_BASE_MS, 4 * RETRY_BASE_MS]
    assert ceilings[9] == 256_000 and ceilings[10:] == [RETRY_CAP_MS, RETRY_CAP_MS]
    assert backoff_ceiling_ms(10**9) == RETRY_CAP_MS  # no 2**(10**9) along the way


@pytest.mark.parametrize(
    "tries,kwargs",
    [(0, {}), (-1, {}), (True, {}), (1, {"base_ms": 0}), (1, {"base_ms": 10, "cap_ms": 5})],
)
def test_bad_backoff_arguments(tries: int, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        retry_delay_ms(tries, rng=random.Random(0), **kwargs)


def test_delays_are_reproducible_with_a_seeded_rng() -> None:
    first = [retry_delay_ms(t, rng=random.Random(7)) for t in range(1, 20)]
    assert first == [retry_delay_ms(t, rng=random.Random(7)) for t in range(1, 20)]


def test_full_jitter_uses_the_whole_window() -> None:
    rng = random.Random(1)
    delays = [retry_delay_ms(3, rng=rng) for _ in range(2000)]
    assert min(delays) < 100 and max(delays) > 1900 and max(delays) <= 2000


@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=10**5),
    st.integers(min_value=0, max_value=10**7),
    st.integers(),
)
def test_delays_are_never_negative_nor_over_the_cap(
    tries: int, base_ms: int, extra: int, seed: int
) -> None:
    cap_ms = base_ms + extra
    delay = retry_delay_ms(tries, rng=random.Random(seed), base_ms=base_ms, cap_ms=cap_ms)
    assert 0 <= delay <= min(cap_ms, backoff_ceiling_ms(tries, base_ms=base_ms, cap_ms=cap_ms))


@given(st.integers(min_value=1, max_value=10**6), st.integers())
def test_default_delays_stay_within_five_minutes(tries: int, seed: int) -> None:
    assert 0 <= retry_delay_ms(tries, rng=random.Random(seed)) <= RETRY_CAP_MS


# --- circuit breaker --------------------------------------------------------------------

T0 = 1_700_000_000_000


def failed(times: int, now_ms: int = T0) -> CircuitBreaker:
    breaker = CircuitBreaker()
    for _ in range(times):
        breaker = breaker.after_failure(now_ms)
    return breaker


def test_closed_until_the_threshold() -> None:
    breaker = failed(BREAKER_FAILURE_THRESHOLD - 1)
    assert breaker.allows_attempt(T0) and breaker.state_at(T0) == "closed"


def test_opens_after_five_consecutive_failures() -> None:
    assert BREAKER_FAILURE_THRESHOLD == 5
    breaker = failed(5)
    window = backoff_ceiling_ms(5)
    assert not breaker.allows_attempt(T0)
    assert not breaker.allows_attempt(T0 + window - 1)
    assert breaker.state_at(T0 + window - 1) == "open"
    assert breaker.allows_attempt(T0 + window)  # half-open: one probe
    assert breaker.state_at(T0 + window) == "half_open"


def test_a_failed_probe_doubles_the_window_up_to_the_cap() -> None:
    breaker, now = failed(5), T0
    windows = []
    for _ in range(10):
        now = breaker.next_probe_ms
        assert breaker.allows_attempt(now)
        breaker = breaker.after_failure(now)
        windows.append(breaker.next_probe_ms - now)
        assert not breaker.allows_attempt(now)
    assert windows[:3] == [16_000, 32_000, 64_000]
    assert windows[-1] == RETRY_CAP_MS and max(windows) == RETRY_CAP_MS


def test_success_closes_it_and_resets_the_count() -> None:
    breaker = failed(7).after_success()
    assert breaker == CircuitBreaker()
    assert breaker.allows_attempt(T0)
    # A success in between means failures are no longer consecutive.
    assert failed(4).after_success().after_failure(T0).allows_attempt(T0)


def test_breaker_is_a_frozen_value() -> None:
    breaker = CircuitBreaker()
    with pytest.raises(AttributeError):
        breaker.consecutive_failures = 3  # type: ignore[misc]
    assert breaker.after_failure(T0) is not breaker
    assert breaker == CircuitBreaker(0, 0)
