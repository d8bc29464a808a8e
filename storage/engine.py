"""One async engine per node, with the database URL normalised to an async driver.

SQLite gets WAL (readers never wait for the writer), enforced foreign keys and a busy
timeout on every connection, and runs its statements on the loop's thread
(`storage.sqlite_inline`); PostgreSQL is used as configured.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.errors import StorageConfigError
from storage.sqlite_inline import inline_dbapi

__all__ = ["async_url", "create_engine", "is_sqlite"]

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
        engine = create_async_engine(target, echo=echo, module=inline_dbapi())
    else:
        # No pre-ping: it would cost a round trip on every unit of work. A connection the
        # server dropped fails the one unit that meets it (DatabaseUnavailable, a 503), and
        # SQLAlchemy then discards the pool, so the next unit reconnects.
        engine = create_async_engine(target, echo=echo)
    if is_sqlite(engine):
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
