"""Files of messages in shared threads (`storage.network.tables.shared_files`).

Metadata and bytes are read apart: listing a message's files never loads them, and a download
loads one file's bytes once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import AlreadyExists
from storage.network.tables import shared_files

__all__ = ["FileRecord", "FileRepository"]

_META = [c for c in shared_files.c if c.name != "data"]


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    owner: str | None
    event_id: str | None
    position: int | None
    name: str
    content_type: str
    size: int
    sha256: str
    created_at: int
    removed: bool


def _record(row: Any) -> FileRecord:
    return FileRecord(row.id, row.owner, row.event_id, row.position, row.name, row.content_type, row.size,
                      row.sha256, row.created_at, row.removed)


_SELECT = select(*_META, shared_files.c.data.is_(None).label("removed"))


class FileRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, id: str, owner: str | None, name: str, content_type: str, sha256: str, data: bytes,
                  now: int, event_id: str | None = None, position: int | None = None) -> None:
        try:
            await self._conn.execute(shared_files.insert().values(
                id=id, owner=owner, event_id=event_id, position=position, name=name, content_type=content_type,
                size=len(data), sha256=sha256, data=data, created_at=now))
        except IntegrityError:
            raise AlreadyExists("file", (event_id, position)) from None

    async def find(self, file_id: str) -> FileRecord | None:
        row = (await self._conn.execute(_SELECT.where(shared_files.c.id == file_id))).first()
        return None if row is None else _record(row)

    async def of_event(self, event_id: str, position: int) -> FileRecord | None:
        row = (await self._conn.execute(_SELECT.where(shared_files.c.event_id == event_id,
                                                      shared_files.c.position == position))).first()
        return None if row is None else _record(row)

    async def data(self, file_id: str) -> bytes | None:
        """The file's bytes; None once removed."""
        return await self._conn.scalar(select(shared_files.c.data).where(shared_files.c.id == file_id))

    async def attach(self, file_id: str, *, event_id: str, position: int) -> bool:
        """Give an upload to a message; False if it already belongs to one."""
        result = await self._conn.execute(update(shared_files).where(
            shared_files.c.id == file_id, shared_files.c.event_id.is_(None)).values(event_id=event_id,
                                                                                    position=position))
        return bool(result.rowcount)

    async def remove_for_event(self, event_id: str) -> int:
        """Drop the bytes of the message's files (deleted, or its body expired); the rows stay."""
        result = await self._conn.execute(update(shared_files).where(
            shared_files.c.event_id == event_id, shared_files.c.data.is_not(None)).values(data=None))
        return result.rowcount or 0

    async def waiting(self, owner: str) -> int:
        """Uploads of `owner` that no post attached yet."""
        return await self._conn.scalar(select(func.count()).select_from(shared_files).where(
            shared_files.c.owner == owner, shared_files.c.event_id.is_(None))) or 0

    async def expire_uploads(self, *, before: int) -> int:
        """Delete uploads no post attached, made before `before`."""
        result = await self._conn.execute(delete(shared_files).where(
            shared_files.c.event_id.is_(None), shared_files.c.created_at < before))
        return result.rowcount or 0
