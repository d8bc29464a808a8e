"""What a member does when it cannot accept its host's next event: it stops following that
network, says so, and tries again later instead of in a loop.

A member takes a network's events strictly in order, so the one it refuses (a signature it
cannot verify, a key the company itself contradicts, a rule the host broke) blocks everything
after it. Retrying at once would only refuse again, and hammer the host. So the network is
*halted*: the halt names the event, the error code and the reason, shows in the admin API,
the CLI and `/metrics`, and raises an alert. While halted, events the host pushes for that
network are answered `network_halted` (final for the host, which shows the member's refusal
to its operator); the catch-up worker tries the network again after `retry_delay_ms(tries)`
(10 s, doubling, at most an hour), and at once when an operator resumes it. Whatever fixes the
cause (a key refreshed, a peer unblocked, a bug fixed), the next try accepts the event and
the halt is lifted; an operator who gives up leaves the network.

Not every refusal halts: a gap (`out_of_order`), a database hiccup, or anything sent by a
server that is not the network's host changes nothing here. A hostile peer cannot halt a
network it does not host.
"""

from __future__ import annotations

import logging
from typing import Any

from federation.errors import ProtocolError
from node.basics.clock import Clock
from node.basics.errors import KeyConflict, NodeError
from storage.network.halts import Halt
from storage.network.transaction import NetworkStore

__all__ = ["HaltKeeper", "halt_retry_delay_ms"]

log = logging.getLogger(__name__)

# Refusals that say nothing about the event itself: they pass without a halt.
_PASSING = frozenset({"out_of_order", "unavailable", "network_halted", "unknown_network", "internal_error"})
# First retry once a key may be fetched again (node.federation.key_refresh.MIN_INTERVAL_MS), then doubling
# up to an hour: a halted network costs its host one catch-up request an hour at most.
_FIRST_RETRY_MS, _MAX_RETRY_MS = 10_000, 3_600_000


def halt_retry_delay_ms(tries: int) -> int:
    return min(_MAX_RETRY_MS, _FIRST_RETRY_MS * 2 ** max(0, tries - 1))


class HaltKeeper:
    def __init__(self, storage: NetworkStore, clock: Clock, server: str) -> None:
        self._storage = storage
        self._clock = clock
        self._server = server

    async def refused(self, placement: tuple[str, int, str | None] | None, error: ProtocolError | NodeError,
                      via: str) -> Halt | None:
        """An event `via` sent, stated to be at (network, seq, event id) = `placement`, was
        refused with `error`. Halt the network if that was its host's next event."""
        now = self._clock.now_ms()
        if isinstance(error, KeyConflict):
            await self._key_conflict(placement, error, via, now)
        if placement is None or error.code in _PASSING or (getattr(error, "status", 400) or 400) >= 500:
            return None
        name, seq, event_id = placement
        async with self._storage.network_transaction() as tx:
            network = await tx.networks.find(name)
            if network is None or network.host != via or via == self._server or seq != network.head_seq + 1:
                return None
            previous = await tx.halts.find(network.id)
            tries = 1 if previous is None else previous.tries + 1
            reason = f"{error.code}: {error.message}"
            halt = await tx.halts.halt(network.id, seq=seq, event_id=event_id, code=error.code, reason=reason,
                                       now=now, next_try_at=now + halt_retry_delay_ms(tries))
            await tx.alerts.raise_alert(
                "network_halted", network=name, server=via, now=now,
                message=f"{name} is halted at seq {seq}: the host's event {event_id} was refused here ({reason}). "
                        "It is retried by itself; `agentnet network resume` retries at once, "
                        "`agentnet network leave` gives up",
                detail={"seq": seq, "event_id": event_id, "code": error.code})
            if previous is None:
                await tx.audit.record(actor="node", action="network.halted", target=name, now=now, network=name,
                                      partner=via, detail={"seq": seq, "event": event_id, "code": error.code})
        if previous is None:
            log.error("network %s halted at seq %d: event %s from its host %s refused: %s", name, seq, event_id,
                      via, reason)
        return halt

    async def lifted(self, network_id: int, name: str) -> None:
        async with self._storage.network_transaction() as tx:
            lifted = await tx.halts.clear(network_id)
            if lifted:
                await tx.audit.record(actor="node", action="network.resumed", target=name, network=name,
                                      now=self._clock.now_ms())
        if lifted:
            log.warning("network %s resumed: the event it was halted at is accepted now", name)

    async def _key_conflict(self, placement: Any, error: KeyConflict, via: str, now: int) -> None:
        network = placement[0] if placement else None
        async with self._storage.network_transaction() as tx:
            new = await tx.alerts.raise_alert(
                "key_conflict", network=network, server=error.server, now=now,
                message=f"{via}, as host of {network}, vouched for a key of {error.server} that {error.server} "
                        f"itself does not publish: {error.vouched} (vouched) against "
                        f"{', '.join(error.published) or 'none'} (published by {error.server}); the event is refused",
                detail={"vouched": error.vouched, "published": error.published, "host": via})
            if new:  # a refused event is retried with the network halted: one entry, not one per try
                await tx.audit.record(actor="node", action="key.disputed", target=error.server, network=network,
                                      partner=error.server, now=now,
                                      detail={"vouched": error.vouched, "published": error.published, "host": via})
        log.warning("refused a key %s vouched for %s by %s: %s publishes %s", error.vouched, error.server, via,
                    error.server, ", ".join(error.published))
