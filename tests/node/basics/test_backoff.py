"""Full-jitter backoff (`node.basics.backoff`): the ceiling doubles to its cap, delays use the
whole window, and bad arguments are refused."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.basics.backoff import RETRY_BASE_MS, RETRY_CAP_MS, backoff_ceiling_ms, retry_delay_ms


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
