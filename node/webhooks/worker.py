"""Delivering the activity feed to principals' webhooks.

A webhook is a cursor into the node's feed, like a client reading "events since": the row's
`cursor` is the last feed position handled for it. One step reads the next event its owner
may see after the cursor (with the owner's memberships as they are now, exactly as the
client API would), posts it, and moves the cursor past it only after a 2xx. Rows the owner
cannot see are stepped over without a request. So delivery is durable (the feed and the
cursor are in the database; a restart resumes where it stood), at least once (a receiver
drops repeats by `webhook-id`, which is the same for every retry of an event) and in feed
order: each endpoint has one request in flight and the next event waits for the one before.

One in flight is guarded twice. In this process a webhook has at most one sender task; across
processes sharing a database a step first claims the webhook by moving `next_attempt_at`
forward with a compare-and-set (a lease that lapses on its own if the process dies mid-request).

A failed attempt (no answer in time, a non-2xx, a redirect: none are followed) backs the
endpoint off with capped exponential delay and full jitter. After `disable_after_failures`
failures in a row that span at least `disable_after_ms`, the endpoint is disabled with a
reason naming the count and the last answer; the operator sees it in the admin API and the
owner in its own listing. Enabling it again resumes from the cursor, so nothing is skipped as
long as the feed still holds those rows (housekeeping keeps what active webhooks need, not
what disabled ones do; a cursor that fell below the kept range moves to it and says so).

Where a request may go is judged at every attempt (`node.webhooks.resolver`): the session's
connector refuses any address the URL's host resolves to that is not public (or allowed by the
operator), and IP literals are judged before the request. A refusal is a failed attempt like
any other, with the reason as its error; nothing is sent.

Logs name the webhook and the answer, never the secret or what was delivered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from node.basics.backoff import retry_delay_ms
from node.basics.clock import Clock
from node.basics.limits import WebhookLimits
from node.feed.filters import FeedFilter
from node.feed.models import EventOut
from node.feed.service import CursorExpired, CursorUnknown, FeedService
from node.webhooks.resolver import DestinationRefused, Destinations
from node.webhooks.signing import signature_headers
from storage.private.webhooks import Webhook
from storage.storage import Storage

__all__ = ["WebhookWorker", "message_id", "payload"]

log = logging.getLogger(__name__)

# Webhooks started per round; the rest wait for the next round (a wake or the poll).
MAX_STARTS_PER_ROUND = 100
# How much of a failed answer's body is kept as the error the owner and operator see.
MAX_ERROR_BODY_BYTES = 200
# A claim outlives the request it covers by this much, so a slow settle never lets a second
# process send the same event while the first is still writing its outcome.
LEASE_MARGIN_MS = 5000
# Connections to receivers at once, over all endpoints.
MAX_CONNECTIONS = 100
_USER_AGENT = "agent-network-webhooks/1"


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None
    error: str | None  # None: delivered

    @property
    def for_log(self) -> str | None:
        """The error without the receiver's words: its body may quote the message (the owner
        still sees the excerpt in the webhook's `last_error`)."""
        return self.error if self.status is None else f"HTTP {self.status}"


def message_id(webhook_id: int, cursor: str) -> str:
    """`webhook-id`: stable across retries of one event to one endpoint."""
    return f"msg_{webhook_id}_{cursor}"


def payload(event: EventOut) -> bytes:
    at = datetime.fromtimestamp(event.created_at / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    document = {"type": event.type, "timestamp": at, "data": event.model_dump(mode="json")}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookWorker:
    def __init__(self, storage: Storage, feed: FeedService, clock: Clock, limits: WebhookLimits = WebhookLimits(),
                 *, destinations: Destinations | None = None, session: aiohttp.ClientSession | None = None,
                 rng: random.Random | None = None) -> None:
        """`session`, for tests sharing one between workers, must use `destinations.connector()`."""
        self._storage = storage
        self._feed = feed
        self._clock = clock
        self._limits = limits
        self._destinations = destinations or Destinations.from_limits(limits)
        self._session = session
        self._rng = rng or random.Random()
        self._wakeup = asyncio.Event()
        self._senders: dict[int, asyncio.Task] = {}
        self._any_active = True  # until the first look says otherwise

    def wake(self) -> None:
        """A webhook was created or enabled: look again now."""
        self._wakeup.set()

    def feed_grew(self) -> None:
        """Called after every commit that wrote to the feed. With no active webhook (as of the
        last look) there is nothing to deliver, so the worker keeps to its poll, which also
        notices webhooks made by other processes."""
        if self._any_active:
            self._wakeup.set()

    async def run(self) -> None:
        own = self._session is None
        if own:
            self._session = aiohttp.ClientSession(
                connector=self._destinations.connector(limit=MAX_CONNECTIONS), cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": _USER_AGENT}, trust_env=False)
        try:
            while True:
                self._wakeup.clear()
                try:
                    wait_s = await self._start_senders()
                except Exception:  # a database hiccup must not stop the node; look again later
                    log.exception("webhooks: could not look for due deliveries")
                    wait_s = self._limits.poll_s
                try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    async with asyncio.timeout(wait_s):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
        finally:
            senders = list(self._senders.values())
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            if own and self._session is not None:
                await self._session.close()
                self._session = None

    async def run_once(self) -> int:
        """Deliver whatever is due now, waiting for it; the number of webhooks that were started."""
        before = set(self._senders.values())
        await self._start_senders()
        started = [t for t in self._senders.values() if t not in before]
        await asyncio.gather(*started)
        return len(started)

    async def _start_senders(self) -> float:
        """Start a sender for each webhook that is behind; how long to wait before looking again."""
        now = self._clock.now_ms()
        async with self._storage.read_transaction() as tx:
            _floor, head = await tx.feed.bounds()
            self._any_active = await tx.webhooks.lowest_active_cursor() is not None
            behind = await tx.webhooks.behind(now=now, head=head, limit=MAX_STARTS_PER_ROUND)
            next_at = await tx.webhooks.next_behind_at(head=head)
        self._senders = {i: task for i, task in self._senders.items() if not task.done()}
        for hook in behind:
            if hook.id not in self._senders:
                self._senders[hook.id] = asyncio.create_task(self._drain(hook.id), name=f"webhook:{hook.id}")
        if next_at is not None and next_at > now:
            return min(self._limits.poll_s, (next_at - now) / 1000)
        return self._limits.poll_s

    async def _drain(self, webhook_id: int) -> None:
        try:
            while await self._step(webhook_id):
                pass
        except Exception:  # a sender must never die silently; the next round starts a new one
            log.exception("webhook %d: delivery failed unexpectedly", webhook_id)

    async def _step(self, webhook_id: int) -> bool:
        """Handle the next feed row for one webhook; True if there may be more to do now."""
        now = self._clock.now_ms()
        lease_until = now + int(self._limits.timeout_s * 1000) + LEASE_MARGIN_MS
        async with self._storage.transaction() as tx:
            hook = await tx.webhooks.claim(webhook_id, now=now, lease_until=lease_until)
            if hook is None:
                return False
            owners = await tx.principals.by_ids([hook.principal_id])
        if not owners or owners[0].disabled:
            await self._disable(hook, "its owner is disabled; enable the owner, then the webhook", now=now)
            return False
        try:
            page = await self._feed.read(owners[0], str(hook.cursor), limit=1, only=FeedFilter.from_stored(hook.filter))
        except (CursorExpired, CursorUnknown) as e:
            await self._reset_cursor(hook, e, now=now)
            return True
        if not page.items:  # nothing this owner may see (or follows): step over what was read
            async with self._storage.transaction() as tx:
                await tx.webhooks.advance(hook.id, cursor=int(page.next_cursor), now=now)
            return int(page.next_cursor) > hook.cursor  # a filter reads a bounded stretch: there may be more
        event = page.items[0]
        answer = await self._post(hook, event)
        now = self._clock.now_ms()
        if answer.error is None:
            async with self._storage.transaction() as tx:
                await tx.webhooks.delivered(hook.id, cursor=int(event.cursor), status=answer.status, now=now)
            log.debug("webhook %d: delivered %s", hook.id, message_id(hook.id, event.cursor))
            return True
        await self._failed(hook, answer, now=now)
        return False

    async def _post(self, hook: Webhook, event: EventOut) -> _Answer:
        body = payload(event)
        headers = {"Content-Type": "application/json",
                   **signature_headers(hook.secret, message_id(hook.id, event.cursor), self._clock.now_ms() // 1000,
                                       body)}
        timeout = aiohttp.ClientTimeout(total=self._limits.timeout_s)
        try:
            url = URL(hook.url)
            self._destinations.check_literal(url.raw_host or "", url.port or 0)
            assert self._session is not None, "deliveries run only while the worker does"
            async with asyncio.timeout(self._limits.timeout_s + 1):  # a backstop to aiohttp's own
                async with self._session.post(hook.url, data=body, headers=headers, timeout=timeout,
                                              allow_redirects=False) as response:
                    if 200 <= response.status < 300:
                        return _Answer(response.status, None)
                    excerpt = await response.content.read(MAX_ERROR_BODY_BYTES)
        except TimeoutError:
            return _Answer(None, f"no answer within {self._limits.timeout_s:g} s")
        except DestinationRefused as e:  # an IP literal, judged before the request
            return _Answer(None, f"not sent: {e}")
        except (aiohttp.ClientError, ValueError) as e:  # InvalidURL is both
            if isinstance(e, aiohttp.ClientConnectorError) and isinstance(e.os_error, DestinationRefused):
                return _Answer(None, f"not sent: {e.os_error}")  # a name, judged by the connector's resolver
            return _Answer(None, f"{type(e).__name__}: {e}"[:300])
        text = excerpt.decode("utf-8", "replace").strip()
        what = "redirect (not followed)" if 300 <= response.status < 400 else "answered"
        return _Answer(response.status, f"{what} HTTP {response.status}" + (f": {text}" if text else ""))

    async def _failed(self, hook: Webhook, answer: _Answer, *, now: int) -> None:
        limits = self._limits
        failures = hook.failures + 1
        first = hook.first_failure_at if hook.first_failure_at is not None else now
        if failures >= limits.disable_after_failures and now - first >= limits.disable_after_ms:
            reason = (f"disabled after {failures} failed deliveries in a row over {(now - first) / 1000:.0f} s; "
                      f"last: {answer.error}")
            async with self._storage.transaction() as tx:
                await tx.webhooks.failed(hook.id, status=answer.status, error=answer.error or "", next_attempt_at=now,
                                         now=now)
                await tx.webhooks.set_status(hook.id, status="disabled", reason=reason[:1000], now=now)
            log.warning("webhook %d: disabled after %d failed deliveries in a row; last: %s", hook.id, failures,
                        answer.for_log)
            return
        delay = retry_delay_ms(failures, rng=self._rng, base_ms=limits.retry_base_ms, cap_ms=limits.retry_cap_ms)
        async with self._storage.transaction() as tx:
            await tx.webhooks.failed(hook.id, status=answer.status, error=answer.error or "", next_attempt_at=now + delay,
                                     now=now)
        log.info("webhook %d: attempt failed (%d in a row), next in %d ms: %s", hook.id, failures, delay,
                 answer.for_log)

    async def _disable(self, hook: Webhook, reason: str, *, now: int) -> None:
        async with self._storage.transaction() as tx:
            await tx.webhooks.advance(hook.id, cursor=hook.cursor, now=now)
            await tx.webhooks.set_status(hook.id, status="disabled", reason=reason, now=now)
        log.warning("webhook %d: %s", hook.id, reason)

    async def _reset_cursor(self, hook: Webhook, error: CursorExpired | CursorUnknown, *, now: int) -> None:
        async with self._storage.transaction() as tx:
            floor, head = await tx.feed.bounds()
            cursor = floor if isinstance(error, CursorExpired) else head
            note = (f"feed rows {hook.cursor + 1}..{floor} were pruned before delivery" if cursor == floor
                    else f"cursor {hook.cursor} was ahead of the feed; restarted at {head}")
            await tx.webhooks.advance(hook.id, cursor=cursor, now=now, note=note)
        log.warning("webhook %d: %s", hook.id, note)
