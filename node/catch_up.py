"""A member fetching what it missed from a network's host: "events after N".

Asked for when an invite is accepted, when the host's fan-out arrives out of order, at start
for every network this node is a member of, and every `SWEEP_S` as a safety net. Each page is
applied through the same checks as live delivery (`FederationEngine.accept_sequenced`).
"""

from __future__ import annotations

import asyncio
import logging

from federation.errors import ProtocolError
from federation.events import SequencedEvent
from node.clock import Clock
from node.errors import NodeError
from node.federation_client import PeerClient
from node.federation_engine import FederationEngine
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
        self._refresher = refresher
        self._engine = engine
        self._client = client
        self._clock = clock
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

    async def _accept(self, event: SequencedEvent, host: str) -> None:
        async def attempt():
            async with self._storage.network_transaction() as tx:
                return await self._engine.accept_sequenced(tx, event, via=host)

        # The author (or the host) may have rotated its key since this node pinned it.
        await self._refresher.retrying([event.event.origin, host], event.network, attempt)

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
                for wire in events:
                    event = SequencedEvent.from_wire(wire)
                    await self._accept(event, network.host)
                if len(events) < CATCH_UP_PAGE:
                    return True
        except (NodeError, ProtocolError) as e:
            log.warning("catching up %s failed: %s", name, e)
            return False
