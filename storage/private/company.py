"""The one row naming the company this node belongs to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import AlreadyExists, NotFound
from storage.private.tables import company

__all__ = ["Company", "CompanyRepository"]


@dataclass(frozen=True, slots=True)
class Company:
    server_name: str
    display_name: str
    created_at: int


class CompanyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(self, *, server_name: str, display_name: str, now: int) -> Company:
        if await self.find() is not None:
            raise AlreadyExists("company", server_name)
        await self._conn.execute(
            company.insert().values(
                id=1, server_name=server_name, display_name=display_name, created_at=now
            )
        )
        return Company(server_name=server_name, display_name=display_name, created_at=now)

    async def find(self) -> Company | None:
        row = (await self._conn.execute(select(company).where(company.c.id == 1))).first()
        if row is None:
            return None
        return Company(
            server_name=row.server_name, display_name=row.display_name, created_at=row.created_at
        )

    async def get(self) -> Company:
        found = await self.find()
        if found is None:
            raise NotFound("company", 1)
        return found
