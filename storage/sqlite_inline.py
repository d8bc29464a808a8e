"""SQLite for the async engine, with each statement run on the event loop's own thread.

aiosqlite gives every connection a thread and hands each call to it (cursor, execute,
fetchall, close: three or four hops per statement). On the 2-core machine the benchmarks run
on, a hop costs about 0.4 ms, while the statements this node runs take about 20 µs inside
SQLite; a message took some 35 statements on a node, so the hops and not the database set
its latency (bench/README.md has the profile). Run inline, a statement blocks the loop for
about what SQLite needs, which is less than one hop used to cost.

What could block for long is a writer waiting for another process's write lock (up to the
busy timeout in `storage.engine`). In a node that cannot happen from within: units of work
that write take turns in the process (`storage.Storage`), and WAL readers never wait. Only
another process writing to the same file could make the loop wait, and SQLite is the
embedded, one-process store; several node processes share PostgreSQL instead.

SQLAlchemy's aiosqlite dialect is used as it is; only the object it drives changes, from
aiosqlite's threaded connection to `InlineConnection`, which offers the same calls. The
aiosqlite package itself is not needed: `_DRIVER` stands in for its module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_dbapi

__all__ = ["InlineConnection", "InlineCursor", "inline_dbapi"]


class InlineCursor:
    """A sqlite3 cursor behind aiosqlite's awaitable cursor interface."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    def __aiter__(self) -> InlineCursor:
        return self

    async def __anext__(self) -> Any:
        row = self._cursor.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row


class _InlineQueue:
    """Stands in for aiosqlite's call queue, which SQLAlchemy uses to set the isolation level."""

    __slots__ = ()

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as e:
            future.set_exception(e)
        else:
            future.set_result(result)


class InlineConnection:
    """A sqlite3 connection behind aiosqlite's `Connection` interface, as SQLAlchemy's
    aiosqlite dialect uses it (`_connection` and `_conn` are the names it reads)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._tx = _InlineQueue()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, name: str, num_params: int, func: Callable[..., Any], **kw: Any) -> None:
        self._conn.create_function(name, num_params, func, **kw)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        return InlineCursor(self._conn.execute(sql, parameters))

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _InlineDbapi(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite's module adapter, connecting inline instead of through a thread."""

    def connect(self, *args: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        # Created on the loop's thread and used only there.
        kw.setdefault("check_same_thread", False)
        # InlineConnection has what the adapter calls, not the whole aiosqlite protocol.
        return AsyncAdapt_aiosqlite_connection(self, InlineConnection(sqlite3.connect(*args, **kw)))  # type: ignore[arg-type]


# What SQLAlchemy's adapter reads from the aiosqlite module: sqlite3's exceptions and version,
# and a Connection class (its `stop` tells the dialect a connection can be terminated).
_DRIVER = SimpleNamespace(
    Connection=InlineConnection, __version__=sqlite3.sqlite_version,
    **{name: getattr(sqlite3, name) for name in (
        "DatabaseError", "Error", "IntegrityError", "NotSupportedError", "OperationalError", "ProgrammingError",
        "sqlite_version", "sqlite_version_info")},
)


def inline_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The `module=` for `create_async_engine` on a `sqlite+aiosqlite` URL."""
    return _InlineDbapi(_DRIVER, sqlite3)  # type: ignore[arg-type]
