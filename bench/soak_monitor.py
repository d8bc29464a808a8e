"""What the soak watches while it runs: stalls on healed links, and the error answers nodes
give.

**Stalls.** Every 0.25 s each running node is asked `GET /v1/peers` (queue depth, last success
and next attempt per peer). A directed link A->B *could send* when `Conditions.link_healed(A, B)`
holds, A has rows queued for B, and A's backoff for B has run out: by A's own monotonic
clock (`retry_in_ms` unset or 0, immune to steps of A's wall clock) and, for a backoff another
process or a previous run left in the database, by A's wall clock (`next_attempt_at` unset,
past, or further ahead than any backoff, which a node takes as a clock step). It *made progress* when its
last success changed or its queue shrank since the previous sample. A stall is a stretch of
samples that could send without progress; its length runs from the first such sample to the
last. So a stall measures exactly "the link is healed, the backoff allows, rows are queued,
and nothing is sent" (issue 12, bug 1), to within the sampling interval.

**Error answers.** `error_answers()` reads each node's federation request counters from
`GET /metrics`: requests answered 4xx or 5xx. The soak takes it as a `skew` fault begins and
ends; the difference is how often the skewed node's peers were asked, and refused, meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.nodes import BenchNode
from bench.soak_faults import Conditions

__all__ = ["PeerWatch", "Stall", "error_answers", "get_json"]

SAMPLE_INTERVAL_S = 0.25
# The longest backoff (storage.network.outbox.MAX_BACKOFF_MS): a due time beyond it counts as due.
_MAX_BACKOFF_MS = 300_000
# Short: a paused node must not hold the sampler; a busy one answers well within this.
SAMPLE_TIMEOUT_S = 1.5


@dataclass(frozen=True, slots=True)
class Stall:
    link: str  # "h.soak->m1.soak"
    started_s: float  # since the soak began
    seconds: float
    queue_depth: int  # the most rows queued meanwhile


@dataclass
class _LinkState:
    queue_depth: int | None = None
    last_success_at: int | None = None
    since: float | None = None  # first sample of the current stall
    last: float | None = None  # latest sample of it
    most_queued: int = 0


async def get_json(http: aiohttp.ClientSession, node: BenchNode, path: str, *, timeout: float = SAMPLE_TIMEOUT_S,
                   admin: bool = True, token: str | None = None) -> dict:
    base = node.admin_url if admin else node.client_url
    headers = {"Authorization": f"Bearer {node.admin_token if admin else token}"}
    async with http.get(base + path, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        resp.raise_for_status()
        return await resp.json()


class PeerWatch:
    def __init__(self, http: aiohttp.ClientSession, nodes: dict[str, BenchNode], links: list[tuple[str, str]],
                 conditions: Conditions, *, started: float, threshold_s: float) -> None:
        self._http = http
        self._nodes = nodes
        self._links = links
        self._conditions = conditions
        self._started = started
        self._threshold_s = threshold_s
        self._state = {link: _LinkState() for link in links}
        self.samples = 0
        self.longest: Stall | None = None
        self.stalls: list[Stall] = []  # every stall longer than the threshold

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.gather(*(self._sample(server) for server in self._nodes))
            try:
                async with asyncio.timeout(SAMPLE_INTERVAL_S):
                    await stop.wait()
            except TimeoutError:
                pass
        for link in self._links:
            self._end(link)

    async def _sample(self, server: str) -> None:
        if not self._conditions.node_up(server):
            for link in self._links:
                if link[0] == server:
                    self._end(link)
            return
        try:
            peers = (await get_json(self._http, self._nodes[server], "/v1/peers"))["items"]
        except (aiohttp.ClientError, TimeoutError):
            return  # no news from it this round
        now = time.monotonic()
        clock_ms = time.time_ns() // 1_000_000 + self._conditions.offsets_ms[server]
        self.samples += 1
        for peer in peers:
            link = (server, peer["server"])
            if link not in self._state:
                continue
            state = self._state[link]
            depth, success = peer["queue_depth"], peer["last_success_at"]
            progressed = state.queue_depth is not None and (
                success != state.last_success_at or depth < state.queue_depth)
            state.queue_depth, state.last_success_at = depth, success
            if "retry_in_ms" in peer:  # the sender's own monotonic deadline: immune to clock steps
                backoff_over = peer["retry_in_ms"] in (None, 0) and (
                    peer["next_attempt_at"] is None or peer["next_attempt_at"] <= clock_ms
                    or peer["next_attempt_at"] > clock_ms + _MAX_BACKOFF_MS)
            else:  # a node without it (an older version): the wall-clock due time
                backoff_over = peer["next_attempt_at"] is None or peer["next_attempt_at"] <= clock_ms
            could_send = self._conditions.link_healed(*link) and depth > 0 and backoff_over
            if not could_send or progressed:
                self._end(link)
            if could_send:
                if state.since is None:
                    state.since = now
                state.last = now
                state.most_queued = max(state.most_queued, depth)
                self._note(link, state)

    def _note(self, link: tuple[str, str], state: _LinkState) -> Stall:
        assert state.since is not None and state.last is not None
        stall = Stall(f"{link[0]}->{link[1]}", round(state.since - self._started, 2),
                      round(state.last - state.since, 2), state.most_queued)
        if self.longest is None or stall.seconds > self.longest.seconds:
            self.longest = stall
        return stall

    def _end(self, link: tuple[str, str]) -> None:
        state = self._state[link]
        if state.since is not None:
            stall = self._note(link, state)
            if stall.seconds > self._threshold_s:
                self.stalls.append(stall)
        state.since = state.last = None
        state.most_queued = 0


async def error_answers(http: aiohttp.ClientSession, nodes: dict[str, BenchNode]) -> dict:
    """Per node: its pid and the federation requests it answered with an error, so far."""

    async def one(node: BenchNode) -> tuple[str, dict | None]:
        try:
            async with http.get(node.admin_url + "/metrics", headers={"Authorization": f"Bearer {node.admin_token}"},
                                timeout=aiohttp.ClientTimeout(total=5)) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return node.server, None
        errors = 0
        for family in text_string_to_metric_families(text):
            if family.name != "agentnet_http_requests":
                continue
            for sample in family.samples:
                labels = sample.labels
                if (sample.name.endswith("_total") and labels.get("listener") == "federation"
                        and labels.get("status", "")[:1] in ("4", "5")):
                    errors += int(sample.value)
        return node.server, {"pid": node.proc.pid if node.proc else None, "errors": errors}

    return dict(await asyncio.gather(*(one(n) for n in nodes.values())))
