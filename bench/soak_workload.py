"""The soak's steady workload: agents on every node post to the shared thread through the
client API, one post at a time each, as a careful client does.

Each post carries an `Idempotency-Key` and is retried with the same key and body until its
node answers 2xx: through a killed node's restart, a paused node's silence, a timeout whose
answer was lost. The acknowledgement is recorded with the time it came, so per author the
order of acknowledgements is the order the network must keep. A post the node refuses for good
(a 4xx other than 408 and 429) is recorded as refused and not retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp

from bench.network import BenchNetwork
from bench.nodes import BenchNode

__all__ = ["Ack", "Author", "Refusal"]

# A paused node holds a request for as long as the pause (seconds); give up on it a bit later.
REQUEST_TIMEOUT_S = 10.0
# Retries back off from 0.1 s to 1 s: quick through a restart, gentle on a node that is down.
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 1.0
_RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Ack:
    author: str  # participant id, agent:a1@m1.soak
    n: int  # the author's nth post, from 0
    key: str
    body: str
    event_id: str
    seq: int | None  # None: pending at a member when acknowledged
    acked_at: float  # monotonic
    attempts: int
    replayed: bool  # the answer came from the node's idempotency store


@dataclass(frozen=True, slots=True)
class Refusal:
    author: str
    n: int
    body: str
    status: int
    answer: str


@dataclass
class Author:
    """One agent posting on its own node."""

    http: aiohttp.ClientSession
    node: BenchNode
    handle: str
    token: str
    network: BenchNetwork
    run_id: str
    rng: random.Random
    acks: list[Ack] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # bodies still unacknowledged when the soak gave up
    attempts: int = 0

    @property
    def participant(self) -> str:
        return f"agent:{self.handle}@{self.node.server}"

    def body(self, n: int) -> str:
        return f"soak {self.participant} #{n}"

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """Post until `stop` is set; the post under way when it is set is still seen through."""
        n = 0
        while not stop.is_set():
            await self._post(n)
            n += 1
            try:  # paced with jitter, so the authors do not post in lockstep
                async with asyncio.timeout(interval_s * self.rng.uniform(0.5, 1.5)):
                    await stop.wait()
            except TimeoutError:
                pass

    async def _post(self, n: int) -> None:
        body, key = self.body(n), f"soak-{self.run_id}-{self.node.server}-{self.handle}-{n}"
        url = self.node.client_url + self.network.messages_path
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}
        delay, attempts = RETRY_FIRST_S, 0
        try:
            while True:
                attempts += 1
                self.attempts += 1
                try:
                    async with self.http.post(url, json={"body": body}, headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as resp:
                        text = await resp.text()
                        if 200 <= resp.status < 300:
                            answer = await resp.json(content_type=None)
                            self.acks.append(Ack(
                                author=self.participant, n=n, key=key, body=body, event_id=answer["id"],
                                seq=answer.get("seq"), acked_at=time.monotonic(), attempts=attempts,
                                replayed=resp.headers.get("Idempotent-Replayed") == "true",
                            ))
                            return
                        if 400 <= resp.status < 500 and resp.status not in _RETRIED_STATUSES:
                            self.refused.append(Refusal(self.participant, n, body, resp.status, text[:300]))
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass  # down, paused or reset: the same key again
                await asyncio.sleep(delay * self.rng.uniform(0.5, 1.0))
                delay = min(RETRY_MAX_S, delay * 2)
        except asyncio.CancelledError:
            self.abandoned.append(body)
            raise
