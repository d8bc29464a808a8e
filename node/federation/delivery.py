"""Delivering outbox rows to peers.

One sender per destination at a time, so a peer sees a network's events in sequence order and
no row is sent twice at once; rows go first in, first out, so one author's events reach the
host in the order this node accepted them. A sender claims the oldest rows for its peer
(bounded by count and bytes), sends them as one transaction, and settles each row by the
peer's answer for it: accepted rows are done, rows the peer refused for good (a rule, a bad
signature) fail on their own without holding up the rest, and rows it refused only for now (a
gap it is catching up on, a key it is learning) wait, with the whole destination, for a short
backoff that grows while nothing gets through.

If the peer cannot be reached, or refuses the whole request, every row goes back to pending
and the peer is backed off with capped exponential delay and full jitter
(`node.basics.backoff.retry_delay_ms`), or for as long as its 429 Retry-After asks. The
backoff is kept twice: in this process as a monotonic deadline, which decides when this
process sends again whatever the wall clock does; and in the database
(`delivery_status.next_attempt_at`), for operators, other node processes and restarts (where
a due time further ahead than any backoff counts as due: it came from a clock step). The worker
looks at its deadlines on every round, however it was woken, and sleeps no longer than until
the next one, so sending resumes as soon as a backoff runs out.

`wake(server)` lifts a backoff at once: it is called when the peer pings us (it does so when it
starts), and when one of our own calls to it succeeds (an error answer never counts); the
peer's other requests prove only its own direction, so they do not. On start a node pings every
peer, so peers that backed off from it while it was down resume at once. Rows in flight when
the node stopped are requeued on start; the transaction id is derived from the rows and their
tries, so the receiver answers a retransmission of the same batch from memory (the id also
names this run, so it never matches anything else).

A wake costs nothing when there is nothing to do: `queued(servers)` comes after every commit
that queued rows (`FederationEngine`, through `after_commit`) and starts those senders
directly; everything else (rows or backoffs written by another node process on the same
PostgreSQL) is found by the poll every `IDLE_POLL_S`. Each answer is settled in the same
database transaction that claims the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable

from node.basics.backoff import retry_delay_ms
from node.basics.clock import Clock
from node.basics.errors import PeerRefused, PeerUnreachable
from node.federation.peer_client import PeerClient
from storage.network.outbox import OutboxItem
from storage.network.peers import PeerRecord
from storage.network.transaction import NetworkStore, NetworkTransaction

__all__ = ["DeliveryWorker"]

log = logging.getLogger(__name__)

# Bounds of one transaction. 100 events is Matrix's PDU limit per transaction; 1 MiB keeps a
# batch well under the receiver's body limit even with escaping.
MAX_BATCH_EVENTS = 100
MAX_BATCH_BYTES = 1024 * 1024
# A destination that refused events only for now (a gap it is catching up on, a key it is still
# learning) is tried again after this, doubling while nothing gets through, up to a minute.
OUT_OF_ORDER_RETRY_MS = 1000
_TRANSIENT_RETRY_CAP_MS = 60_000
# Per-event refusals that can succeed later: a gap the peer is catching up on, a key it is
# still learning, a database hiccup. Anything else is final for that event.
_TRANSIENT = frozenset({"out_of_order", "unknown_key", "unavailable"})
# A start-up announcement is a courtesy; do not let a dead peer hold it for long.
ANNOUNCE_TIMEOUT_S = 5
# With nothing to do, look for due rows this often (backoff expiry, rows written by another
# process on the same database).
IDLE_POLL_S = 1.0


class DeliveryWorker:
    def __init__(self, storage: NetworkStore, client: PeerClient, clock: Clock, *, rng: random.Random | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._storage = storage
        self._client = client
        self._clock = clock
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._wakeup = asyncio.Event()
        self._woken: set[str] = set()
        self._rows_committed = False
        self._queued: set[str] = set()
        # Peers this process backed off, with the monotonic moment the backoff runs out.
        self._backoff: dict[str, float] = {}
        # Answers in a row, per peer, that refused events only for now and accepted none.
        self._transient_streak: dict[str, int] = {}
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

    def retry_in_ms(self, server: str) -> int | None:
        """How long until this process tries `server` again, by its monotonic clock (so a wall
        clock step does not change it); None if this process is not holding it back."""
        until = self._backoff.get(server)
        return None if until is None else max(0, int((until - self._monotonic()) * 1000))

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
            peers = [p for p in await tx.peers.all() if p.status == "accepted"]
        if requeued:
            log.info("requeued %d outbox rows that were in flight at the last stop", requeued)
        # Tell every peer we are back, so their senders stop backing off from us now.
        announcements = [asyncio.create_task(self._announce(p.server, p.endpoint)) for p in peers]
        last_poll: float | None = None  # the first round looks at everything
        try:
            while True:
                self._wakeup.clear()
                now = self._monotonic()
                polled = last_poll is None or now - last_poll >= IDLE_POLL_S
                if polled:
                    last_poll = now
                expired = {server for server, until in self._backoff.items() if until <= now}
                await self._start_due_senders(polled=polled, expired=expired)
                # Sleep until the next poll or the next backoff to run out, whichever is first:
                # steady wakes for other peers never keep a peer waiting past its backoff.
                deadlines = [(last_poll or now) + IDLE_POLL_S, *self._backoff.values()]
                try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    async with asyncio.timeout(max(0.0, min(deadlines) - self._monotonic())):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
        finally:
            for task in [*self._senders.values(), *announcements]:
                task.cancel()
            await asyncio.gather(*self._senders.values(), *announcements, return_exceptions=True)

    async def _announce(self, server: str, endpoint: str) -> None:
        try:
            await self._client.call("POST", endpoint, server, "/ping", {}, timeout_s=ANNOUNCE_TIMEOUT_S)
        except (PeerUnreachable, PeerRefused) as e:
            log.info("could not tell %s that this node is back: %s", server, e)

    async def _start_due_senders(self, *, polled: bool, expired: set[str]) -> None:
        """Start a sender for every peer with due rows. A peer whose backoff ran out, and a wake
        for committed rows or for a peer this process backed off, look at once; a peer that is
        up but was never backed off here only matters if another node process (one PostgreSQL)
        backed it off, and the next poll looks at it."""
        rows, self._rows_committed = self._rows_committed, False
        due, self._queued = self._queued - set(self._backoff), set()
        lift = expired | (set(self._woken) if polled else self._woken & set(self._backoff))
        if polled or rows or lift:
            self._woken -= lift
            for server in lift:
                self._backoff.pop(server, None)
            now = self._clock.now_ms()
            async with self._storage.network_transaction() as tx:
                for server in lift:  # the peer is back, or its time is up: forget its backoff
                    if (await tx.peers.delivery(server)).next_attempt_at is not None:
                        await tx.peers.clear_backoff(server)
                due.update(await tx.outbox.due_destinations(now))  # backed-off peers are not due
            due -= set(self._backoff)
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
                    self._backoff.pop(server, None)  # it answered: any backoff is over (record_success)
                    now = self._clock.now_ms()
                    async with self._storage.network_transaction() as tx:
                        refused, wait_ms = await self._settle(tx, server, items, results, now)
                        batch = await self._claim(tx, server) if not wait_ms else None
                    for item, error in refused:
                        log.warning("%s refused event %s: %s", server, item.event_id, error)
                    delivered = [i.created_at for i, r in zip(items, results, strict=True) if r.get("status") == 200]
                    log.info("delivered %d event(s) to %s (%d refused)", len(delivered), server, len(refused))
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
            answer = await self._client.call("PUT", peer.endpoint, server, f"/transactions/{txn_id}", body,
                                             announce=False)
            return _results(answer, len(items))
        except PeerRefused as e:
            await self._back_off(server, items, str(e), at_least_ms=(e.retry_after_s or 0) * 1000)
        except PeerUnreachable as e:
            await self._back_off(server, items, str(e))
        return None

    async def _back_off(self, server: str, items: list[OutboxItem], error: str, *, at_least_ms: int = 0) -> None:
        now = self._clock.now_ms()
        async with self._storage.network_transaction() as tx:
            failures = (await tx.peers.delivery(server)).failures + 1
            delay = max(retry_delay_ms(failures, rng=self._rng), at_least_ms)
            await tx.peers.record_failure(server, error=error, next_attempt_at=now + delay, now=now)
            await tx.outbox.retry([i.id for i in items], error=error)
            if failures == 1:  # the start of an outage; the peers list shows its course
                await tx.audit.record(actor="node", action="delivery.failing", target=server, partner=server,
                                      now=now, detail={"error": error[:300], "events": len(items)})
        self._backoff[server] = self._monotonic() + delay / 1000
        log.warning("delivery to %s failed (%d in a row), next try in %d ms: %s", server, failures, delay, error)

    async def _settle(self, tx: NetworkTransaction, server: str, items: list[OutboxItem], results: list[dict],
                      now: int) -> tuple[list[tuple[OutboxItem, str]], int]:
        """Record each event's answer; returns the events refused for good, with why, and how
        long the destination waits before it is tried again (0: at once)."""
        done, later, refused = [], [], []
        for item, result in zip(items, results, strict=True):
            status = result.get("status")
            if status == 200:
                done.append(item.id)
            elif result.get("code") in _TRANSIENT or (isinstance(status, int) and status >= 500):
                later.append(item.id)
            else:
                reason = f" ({result['reason']})" if isinstance(result.get("reason"), str) else ""
                refused.append((item, f"{status} {result.get('code')}{reason}: {result.get('message', '')}"))
        await tx.outbox.delivered(done, now=now)
        await tx.outbox.retry(later, error="refused for now")
        for item, error in refused:
            await tx.outbox.reject([item.id], error=error, now=now)
            await tx.audit.record(actor="node", action="delivery.refused", target=server, partner=server, now=now,
                                  detail={"event": item.event_id, "error": error[:300]})
        if not later:
            self._transient_streak.pop(server, None)
            await tx.peers.record_success(server, now=now)
            return refused, 0
        # Some events only for now: the whole destination waits (its rows stay in order), longer
        # each time nothing at all got through.
        streak = 0 if done else self._transient_streak.get(server, 0) + 1
        self._transient_streak[server] = streak
        wait = min(_TRANSIENT_RETRY_CAP_MS, OUT_OF_ORDER_RETRY_MS * 2 ** streak)
        await tx.peers.record_success(server, now=now)
        await tx.peers.back_off(server, next_attempt_at=now + wait)
        self._backoff[server] = self._monotonic() + wait / 1000
        return refused, wait


def _results(answer: dict, count: int) -> list[dict]:
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != count or not all(isinstance(r, dict) for r in results):
        raise PeerRefused("the peer's answer does not list one result per event", peer_status=200,
                          peer_code="bad_answer")
    return results
