"""Per-token rate limit on posting: a token bucket per token, in this process's memory.

A token may post `burst` messages at once and `rate` per second after that. Several node
processes on one database each keep their own buckets, so the effective limit is per process;
that bounds a runaway agent, which is what this is for. Buckets are kept for the most recent
tokens only, so a flood of distinct tokens cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from node.auth import Caller
from node.errors import TooManyRequests

__all__ = ["PostRateLimiter"]

# A full bucket and a forgotten one behave the same, so forgetting is safe; 10,000 tokens is
# far more than the agents and people one company runs at once.
_MAX_BUCKETS = 10_000


class PostRateLimiter:
    def __init__(self, *, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("the post rate must be positive and the burst at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._now = monotonic
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()  # token id -> (tokens, at)

    def check(self, caller: Caller) -> None:
        """Take one post from the caller's bucket, or raise 429 with the seconds to wait."""
        now = self._now()
        tokens, at = self._buckets.pop(caller.token_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[caller.token_id] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self._rate)
            raise TooManyRequests(f"posting too fast: at most {self._rate:g} per second, "
                                  f"bursts of {int(self._burst)}", retry_after_s=max(1, wait))
        self._buckets[caller.token_id] = (tokens - 1.0, now)
        while len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
