"""Rate limits as token buckets, in this process's memory: posts per client token, and what
each peer node may make this node do (requests, events, bytes per second).

A key may spend `burst` at once and `rate` per second after that. Several node processes on
one database each keep their own buckets, so the effective limit is per process; that bounds
a runaway agent or a flooding peer, which is what this is for. Buckets are kept for the most
recent keys only, so a flood of distinct keys cannot grow memory without bound (a forgotten
bucket and a full one behave the same).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from node.basics.errors import TooManyRequests
from node.basics.limits import FederationLimits

__all__ = ["PeerRateLimiter", "PostRateLimiter", "TokenBuckets"]

# 10,000 keys is far more than the agents and people, or the peers, one company has at once.
_MAX_BUCKETS = 10_000


class TokenBuckets:
    def __init__(self, *, rate_per_s: float, burst: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a rate must be positive and its burst at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self.rate, self.burst = self._rate, self._burst
        self._now = monotonic
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Spend `cost` from `key`'s bucket and return 0, or spend nothing and return the seconds
        until it could. A cost above the burst is let through from a full bucket, which then
        owes the rest (so one large transaction is not refused for good)."""
        now = self._now()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        needed = min(cost, self._burst)
        if tokens < needed:
            self._buckets[key] = (tokens, now)
            return (needed - tokens) / self._rate
        self._buckets[key] = (tokens - cost, now)
        while len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return 0.0

    def level(self, key: Hashable) -> float:
        """What `key` could spend now, without spending it."""
        now = self._now()
        tokens, at = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - at) * self._rate)

    def give_back(self, key: Hashable, cost: float) -> None:
        """Undo a `take` whose work was refused by a later check."""
        tokens, at = self._buckets.get(key, (self._burst, self._now()))
        self._buckets[key] = (min(self._burst, tokens + cost), at)


def _refuse(what: str, wait_s: float) -> TooManyRequests:
    return TooManyRequests(f"too many {what}: slow down and retry after the time in Retry-After",
                           retry_after_s=max(1, math.ceil(wait_s)))


class PostRateLimiter:
    """Posts per client token."""

    def __init__(self, *, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._buckets = TokenBuckets(rate_per_s=rate_per_s, burst=burst, monotonic=monotonic)
        self._describe = f"posts: at most {rate_per_s:g} per second, bursts of {burst}"

    def check(self, token_id: int) -> None:
        """Take one post from the bucket of the caller's token, or raise 429 with the seconds to wait."""
        wait = self._buckets.take(token_id)
        if wait:
            raise _refuse(self._describe, wait)

    def headers(self, token_id: int) -> dict[str, str]:
        """The caller's standing as the `RateLimit-*` headers say it (draft-ietf-httpapi-ratelimit-
        headers): the burst, the posts it may make now, and the seconds until its bucket is full."""
        level = self._buckets.level(token_id)
        burst, rate = self._buckets.burst, self._buckets.rate
        return {"RateLimit-Limit": str(int(burst)), "RateLimit-Remaining": str(int(level)),
                "RateLimit-Reset": str(math.ceil((burst - level) / rate)),
                "RateLimit-Policy": f"{int(burst)};w={math.ceil(burst / rate)}"}


class PeerRateLimiter:
    """What one authenticated peer may make this node do, per second: requests, request body
    bytes, and events to check (each costs signature checks and a database write): its own
    events submitted to this node as their host, and the sequenced events it sends as host."""

    def __init__(self, limits: FederationLimits, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._requests = TokenBuckets(rate_per_s=limits.requests_per_s, burst=limits.requests_burst,
                                      monotonic=monotonic)
        self._bytes = TokenBuckets(rate_per_s=limits.bytes_per_s, burst=limits.bytes_burst, monotonic=monotonic)
        self._submissions = TokenBuckets(rate_per_s=limits.submissions_per_s, burst=limits.submissions_burst,
                                         monotonic=monotonic)
        self._host_events = TokenBuckets(rate_per_s=limits.host_events_per_s, burst=limits.host_events_burst,
                                         monotonic=monotonic)
        self._monotonic = monotonic
        self._per_partner: dict[int, TokenBuckets] = {}  # per-minute limit -> buckets of the partners with it

    def _partner_buckets(self, per_minute: int) -> TokenBuckets:
        """Buckets of `per_minute` events a minute, bursts of as many (one set per distinct limit:
        a few, since operators set them)."""
        buckets = self._per_partner.get(per_minute)
        if buckets is None:
            buckets = self._per_partner[per_minute] = TokenBuckets(rate_per_s=per_minute / 60, burst=per_minute,
                                                                   monotonic=self._monotonic)
        return buckets

    def request(self, origin: str, body_bytes: int) -> None:
        """One request of `body_bytes` from `origin`, or 429."""
        wait = self._requests.take(origin)
        if wait:
            raise _refuse(f"requests from {origin}", wait)
        wait = self._bytes.take(origin, body_bytes)
        if wait:
            self._requests.give_back(origin, 1)
            raise _refuse(f"bytes from {origin}", wait)

    def events(self, origin: str, *, submitted: int, sequenced: int, per_minute: int | None = None) -> None:
        """Events from `origin` to check and store (its own submissions, and sequenced events
        it sends as a host), or 429 with nothing spent. `per_minute`: this company's own limit
        for the submissions of this partner (its policy), on top of the node's."""
        wait = self._submissions.take(origin, submitted) if submitted else 0.0
        if wait:
            raise _refuse(f"events submitted by {origin}", wait)
        if per_minute is not None and submitted:
            wait = self._partner_buckets(per_minute).take(origin, submitted)
            if wait:
                self._submissions.give_back(origin, submitted)
                raise _refuse(f"events submitted by {origin} (this company's limit for it: {per_minute} a minute)",
                              wait)
        wait = self._host_events.take(origin, sequenced) if sequenced else 0.0
        if wait:
            self._submissions.give_back(origin, submitted)
            raise _refuse(f"sequenced events from {origin}", wait)
