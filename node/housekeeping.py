"""Forgetting what no longer protects anything: request nonces past the replay window (a
replay that old fails the clock check anyway) and transaction answers older than a sender
would still retransmit."""

from __future__ import annotations

import asyncio
import logging

from node.clock import Clock
from storage.storage import Storage

__all__ = ["HousekeepingWorker"]

log = logging.getLogger(__name__)

# A sender retransmits the same transaction only after a crash, within minutes; a week is
# ample and keeps the table small.
TRANSACTION_MEMORY_MS = 7 * 24 * 3600 * 1000
INTERVAL_S = 300.0


class HousekeepingWorker:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def run_once(self) -> tuple[int, int]:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            nonces = await tx.inbound.forget_nonces(now=now)
            answers = await tx.inbound.forget_transactions(received_before=now - TRANSACTION_MEMORY_MS)
        return nonces, answers

    async def run(self) -> None:
        while True:
            nonces, answers = await self.run_once()
            if nonces or answers:
                log.debug("forgot %d nonces and %d transaction answers", nonces, answers)
            await asyncio.sleep(INTERVAL_S)
