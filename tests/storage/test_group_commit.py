"""Group commit (`storage.group_commit`): works that arrive together share one transaction,
and a failure anywhere in a group gives each caller exactly its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from storage.group_commit import GroupCommit
from storage.storage import Storage

NOW = 1_700_000_000_000


@pytest.fixture
async def storage(database_url):
    storage = await Storage.open(database_url)
    yield storage
    await storage.close()


class _Works:
    def __init__(self) -> None:
        self.runs: list[str] = []
        self.transactions: dict[str, int] = {}

    def creating(self, handle: str, *, fail: bool = False):
        async def work(tx):
            self.runs.append(handle)
            self.transactions[handle] = id(tx)
            await tx.principals.create(kind="agent", handle=handle, display_name=handle, profile="", now=NOW)
            if fail:
                raise ValueError(f"{handle} refused")
            return handle
        return work


async def _handles(storage: Storage) -> list[str]:
    async with storage.read_transaction() as tx:
        return sorted(p.handle for p in await tx.principals.all())


async def test_works_that_arrive_together_share_one_transaction(storage):
    group, works = GroupCommit(storage), _Works()
    results = await asyncio.gather(*(group.run(works.creating(f"a{i}")) for i in range(5)))
    assert results == [f"a{i}" for i in range(5)]
    assert works.runs == results and len(set(works.transactions.values())) == 1
    assert await _handles(storage) == results


async def test_a_failure_rolls_the_group_back_and_each_caller_gets_its_own_outcome(storage):
    group, works = GroupCommit(storage), _Works()
    results = await asyncio.gather(group.run(works.creating("ok1")), group.run(works.creating("bad", fail=True)),
                                   group.run(works.creating("ok2")), return_exceptions=True)
    assert results[0] == "ok1" and results[2] == "ok2"
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad refused"
    assert works.runs == ["ok1", "bad", "ok1", "bad", "ok2"]  # the group, then each alone
    assert await _handles(storage) == ["ok1", "ok2"]  # each once; nothing of the refused one


async def test_a_work_alone_runs_once(storage):
    group, works = GroupCommit(storage), _Works()
    assert await group.run(works.creating("solo")) == "solo"
    with pytest.raises(ValueError):
        await group.run(works.creating("refused", fail=True))
    assert works.runs == ["solo", "refused"] and await _handles(storage) == ["solo"]


async def test_a_caller_that_gives_up_before_its_group_starts_is_left_out(storage):
    group, works = GroupCommit(storage), _Works()
    kept = asyncio.create_task(group.run(works.creating("kept")))
    dropped = asyncio.create_task(group.run(works.creating("dropped")))
    await asyncio.sleep(0)  # both are queued; the drainer has not run yet
    dropped.cancel()
    assert await kept == "kept"
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert works.runs == ["kept"] and await _handles(storage) == ["kept"]
