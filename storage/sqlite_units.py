"""SQLite units of work on a synchronous engine, behind the awaitable calls repositories make.

Statements on SQLite already run on the loop's thread (`storage.sqlite_inline`), so the async
engine's machinery buys nothing there: each `await conn.execute(...)` still spawns a greenlet,
adapts the cursor and switches to the loop and back, about 120 µs a statement against about
35 µs for the same statement on a sync engine (and 6 µs inside SQLite). A message runs some
30 statements on each node, so that difference was a large part of its latency.

A unit of work on a SQLite file therefore takes a connection from a sync engine on the same
file and hands the repositories a `SyncConnection`, which offers the three calls they make
(`execute`, `scalar`, `scalars`) as coroutines that never suspend, and its `dialect`. Everything else (schema
migrations, backups, tests that reach for `Storage.engine`) keeps the async engine. Both
engines open the same file with the same settings, and units of work that write still take
turns per file (`storage.storage`).

`storage.engine.create_unit_engine` makes that sync engine.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy.engine import Connection, Dialect, Result, RootTransaction

__all__ = ["SyncConnection"]


class SyncConnection:
    """The part of `AsyncConnection` that `Storage` and the repositories use."""

    __slots__ = ("sync_connection",)

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]:
        return self.sync_connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters)

    async def scalars(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.scalars(statement, parameters)

    def begin(self) -> _Begun:
        return _Begun(self.sync_connection)

    async def close(self) -> None:
        self.sync_connection.close()


class _Begun:
    """`async with conn.begin():` over a sync transaction: commit on success, else roll back."""

    __slots__ = ("_connection", "_transaction")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._transaction: RootTransaction | None = None

    async def __aenter__(self) -> RootTransaction:
        self._transaction = self._connection.begin()
        return self._transaction

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        assert self._transaction is not None
        self._transaction.__exit__(kind, error, traceback)
