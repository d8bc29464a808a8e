"""A member fetching what it missed from a network's host: "events after N".

Asked for when an invite is accepted, when the host's fan-out arrives out of order, at start
for every network this node is a member of, and every `SWEEP_S` as a safety net. Each page is
applied through the same checks as live delivery (`node.inbound_events`), in one database
transaction when every event on it is good.
"""

from __future__ import annotations

import asyncio
import logging

from federation.errors import ProtocolError
from node.clock import Clock
from node.errors import NodeError
from node.federation_client import PeerClient
from node.federation_engine import FederationEngine
from node.inbound_events import InboundEvents
from node.key_refresh import KeyRefresher
from storage.storage import Storage

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
    def __init__(self, storage: Storage, engine: FederationEngine, client: PeerClient, clock: Clock,
                 refresher: KeyRefresher) -> None:
        self._storage = storage
        self._engine = engine
        self._client = client
        self._clock = clock
        # A gap inside a page is not answered by catching up at once: the page fails and is
        # asked for again after RETRY_S.
        self._inbound = InboundEvents(storage, engine, refresher, on_gap=lambda network: None)
        self._wanted: set[str] = set()
        self._wakeup = asyncio.Event()

    def request(self, network: str) -> None:
        self._wanted.add(network)
        self._wakeup.set()

    async def run(self) -> None:
        await self._want_all()
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + SWEEP_S
        while True:
            self._wakeup.clear()
            wanted, self._wanted = self._wanted, set()
            failed = [name for name in sorted(wanted) if not await self.catch_up(name)]
            if failed:
                loop.call_later(RETRY_S, lambda names=failed: [self.request(n) for n in names])
            if loop.time() >= next_sweep:
                await self._want_all()
                next_sweep = loop.time() + SWEEP_S
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(max(0.0, next_sweep - loop.time())):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    async def _want_all(self) -> None:
        server = self._engine.server
        async with self._storage.network_transaction() as tx:
            for network in await tx.networks.list():
                if network.host != server and (await tx.networks.members(network.id)).get(server) not in (
                    "left", "removed"
                ):
                    self._wanted.add(network.name)
        self._wakeup.set()

    async def catch_up(self, name: str) -> bool:
        """Apply everything the host has after our head; False if that failed."""
        try:
            while True:
                async with self._storage.network_transaction() as tx:
                    network = await tx.networks.find(name)
                    peer = None if network is None else await tx.peers.find(network.host)
                if network is None or peer is None or peer.status != "accepted":
                    return True
                page = await self._client.call(
                    "GET", peer.endpoint, network.host,
                    f"/networks/{name}/events?after={network.head_seq}&limit={CATCH_UP_PAGE}",
                )
                events = page.get("events")
                if not isinstance(events, list):
                    raise NodeError(f"{network.host} sent a catch-up page without events")
                if not all(isinstance(wire, dict) and "seq" in wire for wire in events):
                    raise NodeError(f"{network.host} sent a catch-up page with an event that is not sequenced")
                for result in await self._inbound.accept(events, via=network.host):
                    if result["status"] != 200:
                        raise NodeError(f"{network.host} sent event {result.get('event_id')} that this node "
                                        f"refuses: {result['code']}: {result['message']}")
                if len(events) < CATCH_UP_PAGE:
                    return True
        except (NodeError, ProtocolError) as e:
            log.warning("catching up %s failed: %s", name, e)
            return False
