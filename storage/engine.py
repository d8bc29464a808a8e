"""One engine per node: PostgreSQL through asyncpg, SQLite through the sync engine of
`storage.sqlite` (its statements run on the loop's thread).

SQLite gets WAL (readers never wait for the writer), enforced foreign keys and a busy
timeout on every connection; PostgreSQL is used as configured.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.errors import StorageConfigError

if TYPE_CHECKING:
    from storage.sqlite import SqliteEngine

__all__ = ["create_engine", "driver_url", "is_sqlite", "sqlite_file"]

_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+asyncpg"}

# How long a SQLite writer waits for the lock before failing: long enough to ride out a
# checkpoint, short enough that a stuck writer shows up as an error rather than a hang.
_SQLITE_BUSY_TIMEOUT_MS = 5000


def driver_url(url: str) -> str:
    """Map `sqlite:///x.db` and `postgresql://...` to the drivers the node runs them with
    (pysqlite, asyncpg); refuse others."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StorageConfigError(f"database URL is not valid: {e}") from None
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise StorageConfigError(
            f"database URL must be sqlite or postgresql, not {backend!r}"
        )
    return parsed.set(drivername=_DRIVERS[backend]).render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine | SqliteEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine | SqliteEngine:
    target = driver_url(url)
    if target.startswith("sqlite"):
        return _create_sqlite(target, echo=echo)
    # No pre-ping: it would cost a round trip on every unit of work. A connection the server
    # dropped fails the one unit that meets it (DatabaseUnavailable, a 503), and SQLAlchemy
    # then discards the pool, so the next unit reconnects.
    return create_async_engine(target, echo=echo)


def _create_sqlite(url: str, *, echo: bool) -> SqliteEngine:
    # sqlite3 and its dialect are imported here only: a PostgreSQL node has no use for them.
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy.pool import QueuePool, StaticPool

    from storage.sqlite import SqliteEngine

    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:":
        # A database in memory lives in its one connection: every unit of work shares it.
        engine = create_sync_engine(url, echo=echo, poolclass=StaticPool,
                                    connect_args={"check_same_thread": False})
    else:
        # No limit on connections: a pool that ran out would block the loop's thread, and with
        # it the unit of work that was to give a connection back.
        engine = create_sync_engine(url, echo=echo, poolclass=QueuePool, pool_size=5, max_overflow=-1)
        if not database.startswith("file:"):
            _create_private(database)
    event.listen(engine, "connect", _configure_sqlite)
    return SqliteEngine(engine)


def _create_private(path: str) -> None:
    """Create a new database file 0600 before SQLite does: SQLite would make it with the
    process's default mode (0644 under the usual umask) and gives its -wal and -shm files the
    mode of the database file, so all three stay the owner's whatever the umask."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists, or its directory does not: SQLite opens it or says why
        pass


def sqlite_file(engine: AsyncEngine | SqliteEngine) -> str | None:
    """The file a SQLite engine's database lives in; None for PostgreSQL and for a database
    that belongs to its connection (in memory, or a `file:` URI)."""
    database = engine.url.database
    if not is_sqlite(engine) or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
