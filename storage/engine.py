"""One async engine per node, with the database URL normalised to an async driver.

SQLite gets WAL (readers never wait for the writer), enforced foreign keys and a busy
timeout on every connection, and runs its statements on the loop's thread
(`storage.sqlite_inline`); PostgreSQL is used as configured.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from storage.errors import StorageConfigError

__all__ = ["async_url", "create_engine", "create_unit_engine", "is_sqlite", "sqlite_file"]

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}

# How long a SQLite writer waits for the lock before failing: long enough to ride out a
# checkpoint, short enough that a stuck writer shows up as an error rather than a hang.
_SQLITE_BUSY_TIMEOUT_MS = 5000


def async_url(url: str) -> str:
    """Map `sqlite:///x.db` and `postgresql://...` to their async drivers; refuse others."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StorageConfigError(f"database URL is not valid: {e}") from None
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise StorageConfigError(
            f"database URL must be sqlite or postgresql, not {backend!r}"
        )
    return parsed.set(drivername=_ASYNC_DRIVERS[backend]).render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    target = async_url(url)
    if target.startswith("sqlite"):
        from storage.sqlite_inline import inline_dbapi  # sqlite3 and its dialect: not on a PostgreSQL node

        engine = create_async_engine(target, echo=echo, module=inline_dbapi())
    else:
        # No pre-ping: it would cost a round trip on every unit of work. A connection the
        # server dropped fails the one unit that meets it (DatabaseUnavailable, a 503), and
        # SQLAlchemy then discards the pool, so the next unit reconnects.
        engine = create_async_engine(target, echo=echo)
    if is_sqlite(engine):
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        if (path := sqlite_file(engine)) is not None:
            _create_private(path)
    return engine


def _create_private(path: str) -> None:
    """Create a new database file 0600 before SQLite does: SQLite would make it with the
    process's default mode (0644 under the usual umask) and gives its -wal and -shm files the
    mode of the database file, so all three stay the owner's whatever the umask."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists, or its directory does not: SQLite opens it or says why
        pass


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The file a SQLite engine's database lives in; None for PostgreSQL and for a database
    that belongs to its connection (in memory, or a `file:` URI)."""
    database = engine.url.database
    if not is_sqlite(engine) or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def create_unit_engine(engine: AsyncEngine) -> Engine | None:
    """For a SQLite file, the sync engine its units of work run on (`storage.sqlite_units`);
    None otherwise. An in-memory database belongs to its one connection, so it has none."""
    if sqlite_file(engine) is None:
        return None
    url = engine.url
    # No limit on connections: a sync pool that ran out would block the loop's thread, and
    # with it the unit of work that was to give a connection back.
    units = create_sync_engine(url.set(drivername="sqlite+pysqlite"), poolclass=QueuePool, pool_size=5,
                               max_overflow=-1)
    event.listen(units, "connect", _configure_sqlite)
    return units


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
