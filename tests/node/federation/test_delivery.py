"""The delivery worker against a scripted peer client: real storage and the real worker loop,
with the network faked at the one boundary the worker talks through (`PeerClient.call`).

Issue 12's fault-injection findings: a sender whose backoff ran out did not notice while other
peers kept waking the worker (stalls of 13-27 s after a partition healed); and a wall clock
stepped forward delayed a member's posts by the size of the step and reordered them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

from node.basics.clock import Clock
from node.basics.errors import PeerUnreachable
from node.federation.delivery import DeliveryWorker
from storage.storage import Storage

NOW = 1_700_000_000_000
HOST, SLOW, BUSY = "acme.example", "down.example", "busy.example"


class SteppedClock(Clock):
    """The wall clock plus an offset a test can step."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


class ScriptedClient:
    """Answers like a peer: every event accepted, unless `failing` names the destination."""

    def __init__(self) -> None:
        self.failing: dict[str, Exception] = {}
        self.sent: list[tuple[float, str, list[str]]] = []  # (monotonic time, destination, event ids)
        self.on_reachable = lambda server: None

    async def call(self, method, endpoint, destination, path, payload=None, *, timeout_s=30, announce=True):
        if path == "/ping":
            return {}
        if destination in self.failing:
            raise self.failing[destination]
        events = json.loads(payload)["events"]
        self.sent.append((time.monotonic(), destination, [e["id"] for e in events]))
        return {"results": [{"event_id": e["id"], "status": 200} for e in events]}


@pytest.fixture
async def storage(tmp_path):
    store = await Storage.open(f"sqlite:///{tmp_path / 'node.db'}")
    async with store.network_transaction() as tx:
        network = await tx.networks.create(host=HOST, name="n", title="N", history_visible=True, now=NOW)
        for server in (SLOW, BUSY):
            await tx.peers.upsert(server, status="accepted", endpoint=f"https://{server}", now=NOW)
    store.network_id = network.id  # type: ignore[attr-defined]
    yield store
    await store.close()


async def queue(storage: Storage, destination: str, event_id: str, *, now: int = NOW) -> None:
    async with storage.network_transaction() as tx:
        row = await tx.events.add(network_id=storage.network_id, event_id=event_id, seq=None,  # type: ignore[attr-defined]
                                  type="message.posted", thread="t", sender=f"agent:a@{HOST}", origin=HOST,
                                  origin_ts=now, wire=json.dumps({"id": event_id}).encode(), now=now)
        await tx.outbox.enqueue(row, [destination], now=now)


class _WorstCase(random.Random):
    def randint(self, a: int, b: int) -> int:  # full jitter at its longest
        return b


async def test_sending_resumes_within_a_second_of_a_backoff_running_out_under_steady_wakes(storage):
    client, clock = ScriptedClient(), SteppedClock()
    worker = DeliveryWorker(storage, client, clock, rng=_WorstCase())  # type: ignore[arg-type]
    client.failing[SLOW] = PeerUnreachable(f"{SLOW} is unreachable: blackholed")
    for i in range(5):
        await queue(storage, SLOW, f"$slow{i}")
    task = asyncio.create_task(worker.run())
    try:
        async def backed_off(failures: int) -> None:
            while True:
                async with storage.network_transaction() as tx:
                    status = await tx.peers.delivery(SLOW)
                if status.failures >= failures and status.next_attempt_at is not None:
                    return
                await asyncio.sleep(0.02)

        # The link is down: three failed tries (0.5 s and 1 s apart), then a backoff of 2 s.
        await asyncio.wait_for(backed_off(3), 10)
        assert 0 < worker.retry_in_ms(SLOW) <= 2000  # what GET /v1/peers shows: immune to clock steps
        assert worker.retry_in_ms(BUSY) is None
        healed = time.monotonic()
        del client.failing[SLOW]
        async with storage.network_transaction() as tx:
            status = await tx.peers.delivery(SLOW)
        backoff_left = (status.next_attempt_at - clock.now_ms()) / 1000
        # Another peer keeps the worker busy: a post for it every 50 ms, each one a wake.
        n = 0
        while not any(dest == SLOW for _t, dest, _ids in client.sent):
            await queue(storage, BUSY, f"$busy{n}")
            worker.queued([BUSY])
            n += 1
            await asyncio.sleep(0.05)
            assert time.monotonic() - healed < backoff_left + 5, "the healed peer was never sent to"
        resumed = next(t for t, dest, _ids in client.sent if dest == SLOW)
        assert resumed - healed <= backoff_left + 1.0, (resumed - healed, backoff_left)
        assert n > 5  # the wakes really were steady meanwhile
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_forward_clock_step_neither_delays_nor_reorders_a_member_s_posts(storage):
    """Posts queued while the wall clock ran 157 s ahead go out at once when it steps back,
    and before the posts queued after them."""
    client, clock = ScriptedClient(), SteppedClock()
    worker = DeliveryWorker(storage, client, clock)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    try:
        client.failing[SLOW] = PeerUnreachable("host down while the clock is ahead")
        clock.offset_ms = 157_000
        for i in range(3):
            await queue(storage, SLOW, f"$ahead{i}", now=clock.now_ms())
            worker.queued([SLOW])
        await asyncio.sleep(0.3)
        clock.offset_ms = 0  # the clock steps back
        del client.failing[SLOW]  # the host is back, without a word (no restart, no ping)
        for i in range(3):
            await queue(storage, SLOW, f"$after{i}", now=clock.now_ms())
            worker.queued([SLOW])
        started = time.monotonic()
        while sum(len(ids) for _t, dest, ids in client.sent if dest == SLOW) < 6:
            assert time.monotonic() - started < 10, client.sent  # not the 157 s of the step
            await asyncio.sleep(0.05)
        order = [i for _t, dest, ids in client.sent if dest == SLOW for i in ids]
        assert order == [f"$ahead{i}" for i in range(3)] + [f"$after{i}" for i in range(3)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
