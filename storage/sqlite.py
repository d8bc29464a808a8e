"""The one way this node runs SQLite: SQLAlchemy's public synchronous pysqlite engine, behind
the awaitable calls the repositories, the migrations and the tests make.

SQLite answers the statements a node runs in microseconds, from the process's own file, so
nothing is gained by handing them to a thread (aiosqlite's way: about 0.4 ms a hop on the
benchmark machine, several hops a statement) or by SQLAlchemy's async layer (a greenlet and
an adapted cursor a statement: about 120 µs against 35 µs on the sync engine). So every
statement runs on the event loop's own thread, on a sync engine, and its coroutines never
suspend (bench/README.md has the profiles).

What could block the loop is a writer waiting for another writer's lock (up to the busy
timeout in `storage.engine`). In a node that cannot happen from within: units of work that
write take turns per file in the process (`storage.storage`), and WAL readers never wait. Only
another process writing to the same file could make the loop wait, and SQLite is the
embedded, one-process store; several node processes share PostgreSQL instead.

`SqliteEngine` offers the part of `AsyncEngine` the node uses (`connect`, `begin`,
`dispose`, `dialect`, `url`), and `SyncConnection` the part of `AsyncConnection` (`execute`,
`scalar`, `scalars`, `begin`, `run_sync`, `close`), so the repositories, the migrations and
the tests are written once for both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.engine import URL, Connection, Dialect, Engine, Result, RootTransaction

__all__ = ["SqliteEngine", "SyncConnection"]

R = TypeVar("R")


class SyncConnection:
    """The part of `AsyncConnection` that `Storage`, the repositories and the migrations use."""

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

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        return fn(self.sync_connection, *args)

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


class SqliteEngine:
    """A sync SQLite engine with `AsyncEngine`'s calls."""

    def __init__(self, engine: Engine) -> None:
        self.sync_engine = engine

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @property
    def url(self) -> URL:
        return self.sync_engine.url

    def connection(self) -> SyncConnection:
        """A connection from the pool; the caller closes it."""
        return SyncConnection(self.sync_engine.connect())

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[SyncConnection]:
        conn = self.connection()
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[SyncConnection]:
        async with self.connect() as conn, conn.begin():
            yield conn

    async def dispose(self) -> None:
        self.sync_engine.dispose()
