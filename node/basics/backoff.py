"""How long to wait before trying again after failures: full-jitter exponential backoff.

Federation delivery (a peer's backoff) and webhooks (a receiver's) use the same rule. Time and
randomness are arguments, so tests fix the seed instead of sleeping.
"""

from __future__ import annotations

import random

__all__ = ["RETRY_BASE_MS", "RETRY_CAP_MS", "backoff_ceiling_ms", "retry_delay_ms"]

# The first retry comes after 0-500 ms: long enough not to hammer a peer that is restarting,
# short enough that a single dropped connection costs no visible delay.
RETRY_BASE_MS = 500
# Five minutes: how stale a recovered peer's copy can get while we back off. A peer that comes
# back calls us, and we retry at once, so the cap only bounds the load a dead peer costs: one
# attempt every 2.5 minutes on average. The ceiling reaches it at the 11th failure.
RETRY_CAP_MS = 300_000


def backoff_ceiling_ms(tries: int, *, base_ms: int = RETRY_BASE_MS, cap_ms: int = RETRY_CAP_MS) -> int:
    """``min(cap, base * 2 ** (tries - 1))``: the longest wait after ``tries`` failures."""
    if type(tries) is not int or tries < 1:
        raise ValueError("tries counts failed attempts and starts at 1")
    if base_ms < 1 or cap_ms < base_ms:
        raise ValueError("need 1 <= base_ms <= cap_ms")
    # Past cap's bit length the doubling is capped anyway; stop before 2**tries gets huge.
    exponent = min(tries - 1, cap_ms.bit_length())
    return min(cap_ms, base_ms << exponent)


def retry_delay_ms(tries: int, *, rng: random.Random, base_ms: int = RETRY_BASE_MS,
                   cap_ms: int = RETRY_CAP_MS) -> int:
    """How long to wait after ``tries`` failed attempts: uniform in ``[0, ceiling]``.

    "Full jitter" (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015): when a
    peer comes back, the senders of every other node spread their retries over the whole
    window instead of arriving together, at the cost of sometimes retrying early.
    """
    return rng.randint(0, backoff_ceiling_ms(tries, base_ms=base_ms, cap_ms=cap_ms))
