"""Delivering outbox rows to peers.

One sender per destination at a time, so a peer sees a network's events in sequence order and
no row is sent twice at once. A sender claims the oldest due rows for its peer (bounded by
count and bytes), sends them as one transaction, and settles each row by the peer's answer
for it: accepted rows are done, rows the peer refused for good (a rule, a bad signature) fail
on their own without holding up the rest, and rows that came out of order wait for a short
retry while the peer catches up.

If the peer cannot be reached, or refuses the whole request, every row goes back to pending
and the peer is backed off with capped exponential delay and full jitter
(`federation.outbox_states.retry_delay_ms`); the per-peer `next_attempt_at` is the circuit
breaker. `wake(server)` lifts that backoff at once: it is called when the peer contacts
us, and when any of our own calls to it succeeds. On start a node pings every peer, so peers
that backed off from it while it was down resume at once. Rows in flight when the node
stopped are requeued on start; the transaction id is derived from the rows and their tries,
so the receiver answers a retransmission of the same batch from memory (the id also names
this run, so it never matches anything else).

A wake costs nothing when there is nothing to do: `queued(servers)` comes after every commit
that queued rows (`FederationEngine`, through `after_commit`) and starts those senders
directly, and a peer's call lifts a backoff only if this process set one; everything else
(rows or backoffs written by another node process on the same PostgreSQL) is found by the
poll every `IDLE_POLL_S`. Each answer is settled in the same database transaction that claims
the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable

from federation.outbox_states import retry_delay_ms
from node.clock import Clock
from node.errors import PeerRefused, PeerUnreachable
from node.federation_client import PeerClient
from storage.outbox import OutboxItem
from storage.peers import PeerRecord
from storage.storage import NetworkTransaction, Storage

__all__ = ["DeliveryWorker"]

log = logging.getLogger(__name__)

# Bounds of one transaction. 100 events is Matrix's PDU limit per transaction; 1 MiB keeps a
# batch well under the receiver's body limit even with escaping.
MAX_BATCH_EVENTS = 100
MAX_BATCH_BYTES = 1024 * 1024
# An event that arrived before its predecessor is retried after this, once the peer has had
# time to catch up from us.
OUT_OF_ORDER_RETRY_MS = 1000
# Per-event refusals that can succeed later: a gap the peer is catching up on, a key it is
# still learning, a database hiccup. Anything else is final for that event.
_TRANSIENT = frozenset({"out_of_order", "unknown_key", "unavailable"})
# A start-up announcement is a courtesy; do not let a dead peer hold it for long.
ANNOUNCE_TIMEOUT_S = 5
# With nothing to do, look for due rows this often (backoff expiry, rows written by another
# process on the same database).
IDLE_POLL_S = 1.0


class DeliveryWorker:
    def __init__(self, storage: Storage, client: PeerClient, clock: Clock, *, rng: random.Random | None = None) -> None:
        self._storage = storage
        self._client = client
        self._clock = clock
        self._rng = rng or random.Random()
        self._wakeup = asyncio.Event()
        self._woken: set[str] = set()
        self._rows_committed = False
        self._queued: set[str] = set()
        self._backed_off: set[str] = set()  # peers this process backed off and has not heard from since
        self._again: set[str] = set()  # running senders told of new rows while they ran
        self._senders: dict[str, asyncio.Task] = {}
        # Part of every transaction id: a receiver's stored answer can only ever match a
        # retransmission from this run, never new rows that reuse ids after a database reset.
        self._incarnation = secrets.token_hex(4)
        # Told of each answered batch: the peer, the row ids it took, how many it refused for good, when (metrics).
        self.on_settled: Callable[[str, list[int], int, int], Awaitable[None]] = lambda *_: asyncio.sleep(0)

    def queued(self, servers: Iterable[str]) -> None:
        """Rows for `servers` were committed: their senders start without looking for due rows
        first (the claim still skips a peer that is backed off)."""
        self._queued.update(servers)
        self._wakeup.set()

    def wake(self, server: str | None = None) -> None:
        """New outbox rows were committed (no `server`), or `server` called or answered us: look
        again now."""
        if server is None:
            self._rows_committed = True
        else:
            self._woken.add(server)
        self._wakeup.set()

    async def run(self) -> None:
        async with self._storage.network_transaction() as tx:
            requeued = await tx.outbox.requeue_in_flight()
            peers = [p for p in await tx.peers.list() if p.status == "accepted"]
        if requeued:
            log.info("requeued %d outbox rows that were in flight at the last stop", requeued)
        # Tell every peer we are back, so their senders stop backing off from us now.
        announcements = [asyncio.create_task(self._announce(p.server, p.endpoint)) for p in peers]
        polled = True  # the first round looks at everything
        try:
            while True:
                self._wakeup.clear()
                await self._start_due_senders(polled=polled)
                try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    async with asyncio.timeout(IDLE_POLL_S):
                        await self._wakeup.wait()
                    polled = False
                except TimeoutError:
                    polled = True
        finally:
            for task in [*self._senders.values(), *announcements]:
                task.cancel()
            await asyncio.gather(*self._senders.values(), *announcements, return_exceptions=True)

    async def _announce(self, server: str, endpoint: str) -> None:
        try:
            await self._client.call("POST", endpoint, server, "/ping", {}, timeout_s=ANNOUNCE_TIMEOUT_S)
        except (PeerUnreachable, PeerRefused) as e:
            log.info("could not tell %s that this node is back: %s", server, e)

    async def _start_due_senders(self, *, polled: bool) -> None:
        """Start a sender for every peer with due rows. A wake for committed rows or for a peer
        this process backed off looks at once; a peer that is up but was never backed off here
        only matters if another node process (one PostgreSQL) backed it off, and the next poll
        looks at it."""
        rows, self._rows_committed = self._rows_committed, False
        due, self._queued = self._queued - self._backed_off, set()
        lift = set(self._woken) if polled else self._woken & self._backed_off
        if polled or rows or lift:
            self._woken -= lift
            self._backed_off -= lift
            now = self._clock.now_ms()
            async with self._storage.network_transaction() as tx:
                for server in lift:  # the peer is back: forget its backoff
                    if (await tx.peers.delivery(server)).next_attempt_at is not None:
                        await tx.peers.clear_backoff(server)
                due.update(await tx.outbox.due_destinations(now))  # backed-off peers are not due
        for server in sorted(due):
            running = self._senders.get(server)
            if running is not None and not running.done():
                self._again.add(server)  # it may have looked already: look once more before it stops
                continue
            self._senders[server] = asyncio.create_task(self._drain(server), name=f"deliver:{server}")

    async def _drain(self, server: str) -> None:
        """Send batches until none is due; each answer is settled in the transaction that claims
        the next batch."""
        try:
            while True:
                self._again.discard(server)
                async with self._storage.network_transaction() as tx:
                    batch = await self._claim(tx, server)
                while batch is not None:
                    peer, items = batch
                    results = await self._send(server, peer, items)
                    if results is None:
                        return
                    self._backed_off.discard(server)  # it answered: any backoff is over (record_success)
                    now = self._clock.now_ms()
                    async with self._storage.network_transaction() as tx:
                        refused = await self._settle(tx, server, items, results, now)
                        batch = await self._claim(tx, server)
                    for item, error in refused:
                        log.warning("%s refused event %s: %s", server, item.event_id, error)
                    delivered = [i.created_at for i, r in zip(items, results) if r.get("status") == 200]
                    await self.on_settled(server, delivered, len(refused), now)
                if server not in self._again:
                    return
        except Exception:  # a sender must never die silently; the next round starts a new one
            log.exception("delivery to %s failed unexpectedly", server)

    async def _claim(self, tx: NetworkTransaction, server: str) -> tuple[PeerRecord, list[OutboxItem]] | None:
        peer = await tx.peers.find(server)
        if peer is None or peer.status != "accepted":
            return None
        items = await tx.outbox.claim(server, now=self._clock.now_ms(), max_count=MAX_BATCH_EVENTS,
                                      max_bytes=MAX_BATCH_BYTES)
        return (peer, items) if items else None

    async def _send(self, server: str, peer: PeerRecord, items: list[OutboxItem]) -> list[dict] | None:
        """The peer's result per event, or None if it could not be reached (backed off)."""
        txn_id = f"{self._incarnation}-{items[0].id}-{items[-1].id}-{len(items)}-{items[0].tries}"
        # The stored wire forms are canonical already: splice them rather than parse and re-encode.
        body = b'{"events":[' + b",".join(item.wire for item in items) + b"]}"
        try:
            answer = await self._client.call("PUT", peer.endpoint, server, f"/transactions/{txn_id}", body)
            return _results(answer, len(items))
        except (PeerUnreachable, PeerRefused) as e:
            await self._back_off(server, items, str(e))
            return None

    async def _back_off(self, server: str, items: list[OutboxItem], error: str) -> None:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            failures = (await tx.peers.delivery(server)).failures + 1
            next_at = now + retry_delay_ms(failures, rng=self._rng)
            await tx.peers.record_failure(server, error=error, next_attempt_at=next_at, now=now)
            await tx.outbox.retry([i.id for i in items], error=error, not_before=next_at)
        self._backed_off.add(server)
        log.warning("delivery to %s failed (%d in a row), next try in %d ms: %s",
                    server, failures, next_at - now, error)

    async def _settle(self, tx: NetworkTransaction, server: str, items: list[OutboxItem], results: list[dict],
                      now: int) -> list[tuple[OutboxItem, str]]:
        """Record each event's answer; returns the events refused for good, with why."""
        done, later, refused = [], [], []
        for item, result in zip(items, results):
            status = result.get("status")
            if status == 200:
                done.append(item.id)
            elif result.get("code") in _TRANSIENT or (isinstance(status, int) and status >= 500):
                later.append(item.id)
            else:
                refused.append((item, f"{status} {result.get('code')}: {result.get('message', '')}"))
        await tx.peers.record_success(server, now=now)
        await tx.outbox.delivered(done, now=now)
        await tx.outbox.retry(later, error="refused for now", not_before=now + OUT_OF_ORDER_RETRY_MS)
        for item, error in refused:
            await tx.outbox.reject([item.id], error=error)
        return refused


def _results(answer: dict, count: int) -> list[dict]:
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != count or not all(isinstance(r, dict) for r in results):
        raise PeerRefused("the peer's answer does not list one result per event", peer_status=200,
                          peer_code="bad_answer")
    return results
