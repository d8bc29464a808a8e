"""Limits and timings of the client side, in one value handed to the assembly (the runner
fills it from settings; tests shrink the timings)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientLimits", "FederationLimits", "WebhookLimits"]


@dataclass(frozen=True, slots=True)
class ClientLimits:
    # Posting: a person types far slower; an agent in a loop is stopped here, not in the thread.
    post_rate_per_s: float = 10.0
    post_burst: int = 30
    # Streams: a comment every 15 s keeps proxies from closing an idle stream (most wait 30-60 s).
    stream_heartbeat_s: float = 15.0
    # A stream client that has not taken a write in this long is dropped (it is not reading).
    stream_write_timeout_s: float = 10.0
    # How often an open stream re-checks its token without a hint: bounds how long a token
    # revoked by another node process, or one that expired, keeps a stream open.
    token_recheck_s: float = 2.0
    # Readers poll the feed this often for writes by other processes (this one's wake them).
    feed_poll_s: float = 1.0
    # Feed rows older than this are pruned; a cursor older than what is kept gets 410.
    feed_retention_ms: int = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class WebhookLimits:
    # Plain http leaks every delivery to the path between the node and the receiver; only
    # tests and a receiver on the same host have a reason to allow it.
    allow_http: bool = False
    # Receivers that are not public (host names, addresses, CIDR blocks) that webhooks may reach
    # anyway: the operator's explicit choice, since by default only public addresses are
    # (node.webhooks.destinations says why).
    allowed_hosts: tuple[str, ...] = ()
    # The node's own listeners, (name, port): refused on any address of this machine, even one
    # that `allowed_hosts` lets through. Filled from the settings by whoever knows the ports.
    own_listeners: tuple[tuple[str, int], ...] = ()
    # One attempt's whole time (connect, send, answer). Standard Webhooks senders use 15 s or
    # less; a receiver should answer at once and do its work afterwards.
    timeout_s: float = 10.0
    # Disabled after this many failures in a row that also span `disable_after_ms`: both, so
    # neither a burst of quick failures nor one failure after a quiet week turns a receiver off.
    disable_after_failures: int = 10
    # A day: longer than a weekend-free outage window, well inside the feed's retention (a week),
    # so an endpoint re-enabled soon after loses nothing.
    disable_after_ms: int = 24 * 3600 * 1000
    # Retries: full jitter up to min(cap, base * 2**(failures-1)); the hour cap bounds the delay
    # an endpoint that recovered sees before its backlog moves again.
    retry_base_ms: int = 1000
    retry_cap_ms: int = 3600 * 1000
    # Look for feed rows written by other processes (this one's commits wake the worker at once).
    poll_s: float = 1.0


@dataclass(frozen=True, slots=True)
class FederationLimits:
    """What one peer node may make this node do per second, after it authenticated; a peer
    over it is answered 429 with Retry-After, which this node's own sender honours."""

    # Requests: a busy peer sends a transaction per round trip (a few ms) and catch-up pages;
    # 100 a second with bursts of 300 leaves that room and bounds signature checks per peer.
    requests_per_s: float = 100.0
    requests_burst: int = 300
    # A company's own events submitted to this node as their host: each costs a signature check,
    # the rules and a database write (about 1 ms, bench/README.md). 50 a second is 3,000 a
    # minute from one partner's people and agents, far more than a conversation; bursts of 200
    # let a member that was cut off deliver what it held.
    submissions_per_s: float = 50.0
    submissions_burst: int = 200
    # A host's sequenced events (every member's, relayed): 1,000 a second is a busy network's
    # fan-out with room to spare; bursts of 5,000 let a backlog after an outage move at once.
    host_events_per_s: float = 1000.0
    host_events_burst: int = 5000
    # Bytes of request bodies: 2 MiB a second, bursts of 8 MiB (four full transactions).
    bytes_per_s: int = 2 * 1024 * 1024
    bytes_burst: int = 8 * 1024 * 1024
