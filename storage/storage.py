"""The storage facade: one engine, and one transaction object composing small repositories.

Services open `async with storage.transaction() as tx:` and call `tx.principals`,
`tx.audit`... so a change and its audit row commit together or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.audit import AuditRepository
from storage.company import CompanyRepository
from storage.engine import create_engine
from storage.errors import StorageError
from storage.knowledge import KnowledgeRepository
from storage.migrations_runner import ensure_schema
from storage.principals import AdminTokenRepository, PrincipalRepository, TokenRepository
from storage.private_threads import PrivateThreadRepository

__all__ = ["DatabaseUnavailable", "Storage", "Transaction"]


class DatabaseUnavailable(StorageError):
    """The database could not be reached or refused the operation."""


class Transaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.company = CompanyRepository(conn)
        self.principals = PrincipalRepository(conn)
        self.tokens = TokenRepository(conn)
        self.admin_tokens = AdminTokenRepository(conn)
        self.private_threads = PrivateThreadRepository(conn)
        self.knowledge = KnowledgeRepository(conn)
        self.audit = AuditRepository(conn)


class Storage:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str, *, auto_migrate: bool = True) -> Storage:
        engine = create_engine(url)
        try:
            await ensure_schema(engine, auto_migrate=auto_migrate)
        except (OperationalError, DBAPIError, OSError) as e:
            await engine.dispose()
            raise DatabaseUnavailable(f"cannot open the database: {e}") from e
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.engine.begin() as conn:
            yield Transaction(conn)

    async def close(self) -> None:
        await self.engine.dispose()
