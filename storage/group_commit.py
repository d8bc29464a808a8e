"""Group commit: units of work that arrive together share one transaction.

Under load, posts queue for the database one behind another (on SQLite, for the writer's
turn), and each paid for its own transaction: taking a connection, locking and reading the
network's row, writing its head and the feed's head, committing. Measured on the benchmark
machine, eight posts in one transaction cost about half as much each as eight in eight.

`GroupCommit.run(work)` queues `work`; a drainer task takes everything queued (up to
`MAX_GROUP`) and runs it in one transaction, in arrival order, each work seeing the ones
before it. The contract that makes this safe: **a work must be safe to run again**, because
if any work of a group raises, or the commit fails, the group is rolled back whole and then
each of its works runs again in a transaction of its own, so each caller gets exactly its own
result or its own error, as if there had been no group. A work that runs alone (no one else
was waiting) simply runs in its own transaction, once.

The drainer is its own task so that a caller that gives up (a client that disconnects)
cannot roll back its neighbours' work; a caller that gives up before its group starts is
left out of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from storage.storage import Storage, Transaction

__all__ = ["MAX_GROUP", "GroupCommit"]

T = TypeVar("T")
Work = Callable[[Transaction], Awaitable[Any]]

# Enough to share the fixed costs widely; small enough that one transaction stays short.
MAX_GROUP = 64


class GroupCommit:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """`work`'s result once its transaction has committed (see the module docstring)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        group: list[tuple[Work, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                group = [(work, future) for work, future in self._queue[:MAX_GROUP] if not future.done()]
                del self._queue[:MAX_GROUP]
                if len(group) > 1 and await self._together(group):
                    continue
                for work, future in group:
                    await self._alone(work, future)
        finally:  # left early only if this task was cancelled: no caller may wait forever
            for _work, future in group + self._queue:
                future.cancel()
            self._queue.clear()

    async def _together(self, group: list[tuple[Work, asyncio.Future[Any]]]) -> bool:
        """Run the group in one transaction; False (nothing kept) if any part of it failed."""
        try:
            async with self._storage.transaction() as tx:
                values = [await work(tx) for work, _future in group]
        except Exception:
            return False
        for (_work, future), value in zip(group, values, strict=True):
            if not future.done():
                future.set_result(value)
        return True

    async def _alone(self, work: Work, future: asyncio.Future[Any]) -> None:
        if future.done():  # its caller gave up meanwhile
            return
        try:
            async with self._storage.transaction() as tx:
                value = await work(tx)
        except Exception as e:
            if not future.done():
                future.set_exception(e)
        else:
            if not future.done():
                future.set_result(value)
