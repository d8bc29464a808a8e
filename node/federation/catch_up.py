"""A member fetching what it missed from a network's host: "events after N".

Asked for when an invite is accepted, when the host's fan-out arrives out of order, at start
for every network this node is a member of, and every `SWEEP_S` as a safety net. Each page is
applied through the same checks as live delivery (`node.federation.inbound`), in one database
transaction when every event on it is good.

A halted network (`node.federation.halting`) is left alone until its next try is due (or an operator
resumes it); then its events are tried again, and if the one it halted at is accepted, the
halt is lifted.
"""

from __future__ import annotations

import asyncio
import logging

from federation.errors import ProtocolError
from node.basics.clock import Clock
from node.basics.errors import NodeError
from node.federation.engine import FederationEngine
from node.federation.halting import HaltKeeper
from node.federation.inbound import InboundEvents
from node.federation.key_refresh import KeyRefresher
from node.federation.peer_client import PeerClient
from storage.network.transaction import NetworkStore

__all__ = ["CATCH_UP_PAGE", "CatchUpWorker"]

log = logging.getLogger(__name__)

# Events per catch-up request: large enough to move fast, small enough that a page of
# 64 KiB events stays under the client's answer limit.
CATCH_UP_PAGE = 500
# How often every network is checked against its host even without a reason.
SWEEP_S = 60.0
# After a failed catch-up, wait this long before asking that host again.
RETRY_S = 5.0


class CatchUpWorker:
    def __init__(self, storage: NetworkStore, engine: FederationEngine, client: PeerClient, clock: Clock,
                 refresher: KeyRefresher, halts: HaltKeeper) -> None:
        self._storage = storage
        self._engine = engine
        self._client = client
        self._clock = clock
        self._halts = halts
        # A gap inside a page is not answered by catching up at once: the page fails and is
        # asked for again after RETRY_S.
        self._inbound = InboundEvents(storage, engine, refresher, halts, on_gap=lambda network: None)
        self._wanted: set[str] = set()
        self._wakeup = asyncio.Event()

    def request(self, network: str) -> None:
        self._wanted.add(network)
        self._wakeup.set()

    def _request_all(self, networks: list[str]) -> None:
        for network in networks:
            self.request(network)

    async def run(self) -> None:
        await self._want_all()
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + SWEEP_S
        while True:
            self._wakeup.clear()
            due, _ = await self._halts_due()
            wanted, self._wanted = self._wanted | due, set()
            failed = [name for name in sorted(wanted) if not await self.catch_up(name)]
            if failed:
                loop.call_later(RETRY_S, self._request_all, failed)
            if loop.time() >= next_sweep:
                await self._want_all()
                next_sweep = loop.time() + SWEEP_S
            _, until_halt = await self._halts_due()
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(max(0.0, min(next_sweep - loop.time(), until_halt))):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    async def _want_all(self) -> None:
        server = self._engine.server
        async with self._storage.network_transaction() as tx:
            for network in await tx.networks.all():
                if network.host != server and (await tx.networks.members(network.id)).get(server) not in (
                    "left", "removed"
                ):
                    self._wanted.add(network.name)
        self._wakeup.set()

    async def _halts_due(self) -> tuple[set[str], float]:
        """Halted networks due for a try, and seconds until one is next: a try that failed
        without refusing anything (the host unreachable) leaves its halt due, and is tried
        again after RETRY_S, never in a loop."""
        async with self._storage.network_transaction() as tx:
            halts = await tx.halts.all()
        now = self._clock.now_ms()
        due = {h.network for h in halts if h.next_try_at <= now}
        later = [(h.next_try_at - now) / 1000 for h in halts if h.next_try_at > now]
        return due, min([SWEEP_S, *later] + ([RETRY_S] if due else []))

    async def catch_up(self, name: str) -> bool:
        """Apply everything the host has after our head; False if that failed. A halted
        network is tried only when its next try is due."""
        try:
            while True:
                async with self._storage.network_transaction() as tx:
                    network = await tx.networks.find(name)
                    peer = None if network is None else await tx.peers.find(network.host)
                    halt = None if network is None else await tx.halts.find(network.id)
                if network is None or peer is None or peer.status != "accepted":
                    return True
                if halt is not None and halt.next_try_at > self._clock.now_ms():
                    return True  # halted: left alone until the next try
                page = await self._client.call(
                    "GET", peer.endpoint, network.host,
                    f"/networks/{name}/events?after={network.head_seq}&limit={CATCH_UP_PAGE}",
                )
                events = page.get("events")
                if not isinstance(events, list):
                    raise NodeError(f"{network.host} sent a catch-up page without events")
                if not all(isinstance(wire, dict) and "seq" in wire for wire in events):
                    raise NodeError(f"{network.host} sent a catch-up page with an event that is not sequenced")
                results = await self._inbound.accept(events, via=network.host,
                                                     resuming=name if halt is not None else None)
                for result in results:
                    if result["status"] != 200:
                        raise NodeError(f"{network.host} sent event {result.get('event_id')} that this node "
                                        f"refuses: {result['code']}: {result['message']}")
                if halt is not None and events:
                    await self._halts.lifted(network.id, name)
                    halt = None
                if len(events) < CATCH_UP_PAGE:
                    return True
        except (NodeError, ProtocolError) as e:
            log.warning("catching up %s failed: %s", name, e)
            return False
