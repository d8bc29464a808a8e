"""Forgetting what no longer protects anything: request nonces past the replay window (a
replay that old fails the clock check anyway), transaction answers older than a sender
would still retransmit, Idempotency-Key answers older than a client would still retry, and
feed rows past their retention (never ones an active webhook has yet to deliver), and
uploads no post attached within a day (`node.networks.files`). And, each
round, asking the companies whose keys a host vouched for but this node could not check yet
for their own key documents (`KeyRefresher.check_unconfirmed`), and removing the bodies of
closed networks' messages past the node's retention (`node.networks.retention`)."""

from __future__ import annotations

import asyncio
import logging

from node.basics.clock import Clock
from node.federation.key_refresh import KeyRefresher
from node.http.idempotency import KEY_MEMORY_MS
from node.networks.files import UPLOAD_TTL_MS
from node.networks.retention import RetentionService
from storage.storage import Storage

__all__ = ["HousekeepingWorker"]

log = logging.getLogger(__name__)

# A sender retransmits the same transaction only after a crash, within minutes; a week is
# ample and keeps the table small.
TRANSACTION_MEMORY_MS = 7 * 24 * 3600 * 1000
INTERVAL_S = 300.0


class HousekeepingWorker:
    def __init__(self, storage: Storage, clock: Clock, *, feed_retention_ms: int,
                 refresher: KeyRefresher | None = None, retention: RetentionService | None = None) -> None:
        self._storage = storage
        self._clock = clock
        self._feed_retention_ms = feed_retention_ms
        self._refresher = refresher
        self._retention = retention

    async def run_once(self) -> dict[str, int]:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            nonces = await tx.inbound.forget_nonces(now=now)
            answers = await tx.inbound.forget_transactions(received_before=now - TRANSACTION_MEMORY_MS)
            uploads = await tx.files.expire_uploads(before=now - UPLOAD_TTL_MS)
        async with self._storage.transaction() as tx:
            keys = await tx.idempotency.forget(created_before=now - KEY_MEMORY_MS)
            feed = await tx.feed.prune(created_before=now - self._feed_retention_ms,
                                       keep_after=await tx.webhooks.lowest_active_cursor())
        return {"nonces": nonces, "transaction answers": answers, "idempotency keys": keys, "feed rows": feed,
                "unposted uploads": uploads}

    async def run(self) -> None:
        while True:
            forgotten = await self.run_once()
            if any(forgotten.values()):
                log.debug("forgot %s", ", ".join(f"{n} {what}" for what, n in forgotten.items()))
            if self._refresher is not None:
                await self._refresher.check_unconfirmed()
            if self._retention is not None:
                await self._retention.run()
            await asyncio.sleep(INTERVAL_S)
