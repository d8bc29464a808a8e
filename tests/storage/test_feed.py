"""The feed's cursor promise: a reader that follows positions never skips a row that commits
late, with several writers, in this process and in separate processes on one PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import textwrap

import pytest

from storage.storage import Storage

NOW = 1_700_000_000_000


async def _thread_with_reader(storage: Storage) -> tuple[int, int]:
    async with storage.transaction() as tx:
        reader = await tx.principals.create(kind="agent", handle="reader", display_name="R", profile="", now=NOW)
        thread = await tx.private_threads.create(name="t", title="T", member_ids=[reader.id], now=NOW)
    return reader.id, thread.id


async def _write(storage: Storage, thread_id: int, sender_id: int, body: str, *, hold_s: float) -> None:
    async with storage.transaction() as tx:
        message = await tx.private_threads.post(thread_id, sender_id=sender_id, body=body, now=NOW)
        await tx.feed_writer.append_private_message(thread_id=thread_id, message_id=message.id, now=NOW)
        await asyncio.sleep(hold_s)  # commit late: a sequence would let a later position show first


async def _follow(storage: Storage, reader_id: int, until: int, seen: list[int]) -> None:
    cursor = 0
    while len(seen) < until:
        async with storage.transaction() as tx:
            _floor, head = await tx.feed.bounds()
            entries = await tx.feed.visible_after(cursor, principal_id=reader_id, participant="agent:reader@x",
                                                  limit=50)
        seen += [e.position for e in entries]
        cursor = entries[-1].position if entries else max(cursor, head)
        await asyncio.sleep(0.001)


async def test_reader_never_skips_a_late_commit(database_url):
    first, second = await Storage.open(database_url), await Storage.open(database_url)  # two engines, two pools
    try:
        reader_id, thread_id = await _thread_with_reader(first)
        rng = random.Random(7)
        count = 40
        seen: list[int] = []
        follower = asyncio.create_task(_follow(first, reader_id, count, seen))
        await asyncio.gather(*[
            _write(first if i % 2 else second, thread_id, reader_id, f"m{i}", hold_s=rng.random() * 0.02)
            for i in range(count)
        ])
        await asyncio.wait_for(follower, 30)
        assert seen == list(range(1, count + 1))
    finally:
        await first.close()
        await second.close()


_WRITER = textwrap.dedent("""
    import asyncio, random, sys
    from storage.storage import Storage

    async def main(url, thread_id, sender_id, count, seed):
        storage = await Storage.open(url)
        rng = random.Random(seed)
        try:
            for i in range(count):
                async with storage.transaction() as tx:
                    m = await tx.private_threads.post(thread_id, sender_id=sender_id, body=f"{seed}-{i}", now=1)
                    await tx.feed_writer.append_private_message(thread_id=thread_id, message_id=m.id, now=1)
                    await asyncio.sleep(rng.random() * 0.01)
        finally:
            await storage.close()

    url, thread_id, sender_id, count, seed = sys.argv[1:]
    asyncio.run(main(url, int(thread_id), int(sender_id), int(count), int(seed)))
""")


@pytest.mark.postgres
async def test_several_processes_writing_to_one_postgresql_leave_no_gap(postgres_url):
    database_url = postgres_url
    storage = await Storage.open(database_url)
    try:
        reader_id, thread_id = await _thread_with_reader(storage)
        per_process, processes = 60, 3
        writers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", _WRITER, database_url, str(thread_id), str(reader_id), str(per_process),
                str(seed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for seed in range(processes)
        ]
        seen: list[int] = []
        await asyncio.wait_for(_follow(storage, reader_id, per_process * processes, seen), 120)
        for writer in writers:
            _out, err = await writer.communicate()
            assert writer.returncode == 0, err.decode()
        assert seen == list(range(1, per_process * processes + 1))
        async with storage.transaction() as tx:
            bodies = [m.body for m in await tx.private_threads.messages(thread_id, limit=500)]
        assert sorted(bodies) == sorted(f"{s}-{i}" for s in range(processes) for i in range(per_process))
    finally:
        await storage.close()
