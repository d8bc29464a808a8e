"""The storage facade: one engine, and one transaction object composing small repositories.

Services open `async with storage.transaction() as tx:` and call `tx.principals`,
`tx.audit`... so a change and its audit row commit together or not at all.

The statements that run for every message (posting, receiving, delivering, feed reads, token
checks) are built once at module level with bind parameters. Building a SQLAlchemy statement
and computing its cache key on every call cost about 90 µs on the benchmark machine, more
than SQLite takes to run it; a prebuilt statement keeps its key (bench/README.md).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TypeVar, cast

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.engine import create_engine, is_sqlite, sqlite_file
from storage.errors import DatabaseUnavailable
from storage.feed import FeedRepository
from storage.migrations_runner import ensure_schema
from storage.network.transaction import NetworkTransaction
from storage.private.audit import AuditRepository
from storage.private.company import CompanyRepository
from storage.private.guard_flags import GuardFlagRepository
from storage.private.idempotency import IdempotencyRepository
from storage.private.knowledge import KnowledgeRepository
from storage.private.principals import AdminTokenRepository, PrincipalRepository, TokenRepository
from storage.private.threads import PrivateThreadRepository
from storage.private.web import WebRepository
from storage.private.webhooks import WebhookRepository
from storage.sqlite import SqliteEngine
from storage.transfer import PrivateTransfer

__all__ = ["NetworkTransaction", "Storage", "Transaction"]

T = TypeVar("T", bound="NetworkTransaction")

class Transaction(NetworkTransaction):
    """Everything: for the node's own services, which bridge private and shared data."""

    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn)
        self.company = CompanyRepository(conn)
        self.principals = PrincipalRepository(conn)
        self.tokens = TokenRepository(conn)
        self.admin_tokens = AdminTokenRepository(conn)
        self.private_threads = PrivateThreadRepository(conn)
        self.knowledge = KnowledgeRepository(conn)
        self.audit: AuditRepository = AuditRepository(conn)  # the network side's writer, able to read
        self.feed = FeedRepository(conn)
        self.idempotency = IdempotencyRepository(conn)
        self.webhooks = WebhookRepository(conn)
        self.guard_flags = GuardFlagRepository(conn)
        self.web = WebRepository(conn)
        self.transfer = PrivateTransfer(conn)  # agentnet export --private and import: whole tables


class Storage:
    def __init__(self, engine: AsyncEngine | SqliteEngine) -> None:
        self.engine = engine
        self._feed_listeners: list[Callable[[], None]] = []
        # SQLite has one writer, and Python's driver begins a transaction only at its first
        # write: the reads before it are not isolated, so two units of work could both read
        # "head is 7" and both write seq 8. On SQLite the units of work that may write take
        # turns in this process instead (PostgreSQL has row locks: `SELECT ... FOR UPDATE`).
        # The turn is per database file, not per engine: statements run on the loop's thread
        # (storage.sqlite), so a second engine on the same file that waited for the file's
        # lock inside SQLite would stall the loop, and with it the writer it waits for.
        self._sqlite_file = _sqlite_file(engine) if is_sqlite(engine) else None

    def on_feed_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each commit that appended to the feed (live readers wake)."""
        self._feed_listeners.append(listener)

    @classmethod
    async def open(cls, url: str, *, auto_migrate: bool = True) -> Storage:
        engine = create_engine(url)
        try:
            await ensure_schema(engine, auto_migrate=auto_migrate)
        except (OperationalError, DBAPIError, OSError) as e:
            await engine.dispose()
            raise DatabaseUnavailable(f"cannot open the database: {_reason(e)}; check database_url") from e
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._unit_of_work(Transaction)

    def read_transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """For units of work that only read (token checks, feed reads): they need not wait
        for SQLite's writers to take turns."""
        return self._unit_of_work(Transaction, read_only=True)

    def network_transaction(self, *, read_only: bool = False) -> AbstractAsyncContextManager[NetworkTransaction]:
        """`read_only`: a unit of work that writes nothing need not wait for SQLite's writers."""
        return self._unit_of_work(NetworkTransaction, read_only=read_only)

    @asynccontextmanager
    async def _unit_of_work(self, kind: type[T], *, read_only: bool = False) -> AsyncIterator[T]:
        """One unit of work. Losing the database surfaces as DatabaseUnavailable, so callers
        never see a driver's exception."""
        async with AsyncExitStack() as turn:
            if self._sqlite_file is not None and not read_only:
                await turn.enter_async_context(_writer_turn(self._sqlite_file))
            async with self._connected(kind) as tx:
                yield tx

    @asynccontextmanager
    async def _connected(self, kind: type[T]) -> AsyncIterator[T]:
        try:
            # A SyncConnection has the part of AsyncConnection the repositories use; every
            # repository runs on it in the SQLite tests.
            conn = (cast(AsyncConnection, self.engine.connection()) if isinstance(self.engine, SqliteEngine)
                    else await self.engine.connect())
        except DBAPIError as e:  # any failure to get a connection: the database is not there
            raise DatabaseUnavailable(f"cannot connect to the database: {type(e.orig).__name__}") from e
        try:
            async with conn.begin():
                tx = kind(conn)
                yield tx
                await tx.flush()
            for callback in tx._after_commit:
                callback()
            if tx.feed_writer.appended:
                for listener in self._feed_listeners:
                    listener()
        except DBAPIError as e:
            if e.connection_invalidated or isinstance(e, (OperationalError, InterfaceError)):
                raise DatabaseUnavailable(f"the database is unavailable: {type(e.orig).__name__}") from e
            raise
        finally:
            await conn.close()

    async def close(self) -> None:
        await self.engine.dispose()


# One asyncio.Lock per SQLite file and event loop (a lock belongs to the loop it first ran on).
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def _sqlite_file(engine: AsyncEngine | SqliteEngine) -> str:
    """What the writers' turn is keyed by: the real path, or the engine for a database of its own."""
    database = sqlite_file(engine)
    return f"engine:{id(engine)}" if database is None else os.path.realpath(database)


def _writer_turn(sqlite_file: str) -> asyncio.Lock:
    per_loop = _turns.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(sqlite_file, asyncio.Lock())


def _reason(error: BaseException) -> str:
    """The driver's own words, on one line (SQLAlchemy's text adds the statement and a link)."""
    cause = getattr(error, "orig", None) or error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
