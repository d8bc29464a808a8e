"""The web app's sign-in links and browser sessions, by the SHA-256 of their tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.private.principals import Principal
from storage.private.tables import principals, sign_in_links, web_reads, web_sessions
from storage.results import inserted_id

__all__ = ["WebRepository", "WebSession"]


@dataclass(frozen=True, slots=True)
class WebSession:
    id: int
    principal_id: int
    csrf: str
    created_at: int
    expires_at: int
    revoked_at: int | None
    user_agent: str


def _session(row) -> WebSession:
    return WebSession(row.id, row.principal_id, row.csrf, row.created_at, row.expires_at, row.revoked_at,
                      row.user_agent)


class WebRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_link(self, principal_id: int, *, token_hash: str, now: int, expires_at: int) -> None:
        await self._conn.execute(sign_in_links.insert().values(
            principal_id=principal_id, token_hash=token_hash, created_at=now, expires_at=expires_at))

    async def use_link(self, token_hash: str, *, now: int) -> int | None:
        """The link's principal, if the link is unused and unexpired; it is used from now on
        (one UPDATE: two browsers racing with one link get one session)."""
        result = await self._conn.execute(
            update(sign_in_links)
            .where(sign_in_links.c.token_hash == token_hash, sign_in_links.c.used_at.is_(None),
                   sign_in_links.c.expires_at > now)
            .values(used_at=now))
        if result.rowcount != 1:
            return None
        return await self._conn.scalar(select(sign_in_links.c.principal_id)
                                       .where(sign_in_links.c.token_hash == token_hash))

    async def link_usable(self, token_hash: str, *, now: int) -> bool:
        return await self._conn.scalar(select(sign_in_links.c.id).where(
            sign_in_links.c.token_hash == token_hash, sign_in_links.c.used_at.is_(None),
            sign_in_links.c.expires_at > now)) is not None

    async def add_session(self, principal_id: int, *, token_hash: str, csrf: str, now: int, expires_at: int,
                          user_agent: str) -> WebSession:
        values = dict(principal_id=principal_id, token_hash=token_hash, csrf=csrf, created_at=now,
                      expires_at=expires_at, user_agent=user_agent[:200])
        result = await self._conn.execute(web_sessions.insert().values(**values))
        return WebSession(inserted_id(result), principal_id, csrf, now, expires_at, None, user_agent[:200])

    async def live(self, token_hash: str, *, now: int) -> tuple[WebSession, Principal] | None:
        """The session and its person, while it is not revoked or expired and the person is enabled."""
        row = (await self._conn.execute(
            select(web_sessions, principals.c.kind, principals.c.handle, principals.c.display_name,
                   principals.c.profile, principals.c.disabled, principals.c.created_at.label("principal_created_at"))
            .join(principals, principals.c.id == web_sessions.c.principal_id)
            .where(web_sessions.c.token_hash == token_hash, web_sessions.c.revoked_at.is_(None),
                   web_sessions.c.expires_at > now, principals.c.disabled.is_(False)))).first()
        if row is None:
            return None
        person = Principal(row.principal_id, row.kind, row.handle, row.display_name, row.profile, row.disabled,
                           row.principal_created_at)
        return _session(row), person

    async def seen(self, principal_id: int) -> dict[tuple[str, str], int]:
        """(network, thread) -> the seq of the newest message the person was shown there."""
        rows = await self._conn.execute(select(web_reads).where(web_reads.c.principal_id == principal_id))
        return {(r.network, r.thread): r.seen_seq for r in rows}

    async def mark_seen(self, principal_id: int, network: str, thread: str, seq: int) -> None:
        """Read up to `seq` (never back: an older page shown later leaves it where it is)."""
        key = (web_reads.c.principal_id == principal_id, web_reads.c.network == network, web_reads.c.thread == thread)
        current = await self._conn.scalar(select(web_reads.c.seen_seq).where(*key))
        if current is None:
            await self._conn.execute(web_reads.insert().values(principal_id=principal_id, network=network,
                                                                thread=thread, seen_seq=seq))
        elif seq > current:
            await self._conn.execute(update(web_reads).where(*key).values(seen_seq=seq))

    async def revoke(self, session_id: int, *, now: int) -> bool:
        result = await self._conn.execute(update(web_sessions).where(
            web_sessions.c.id == session_id, web_sessions.c.revoked_at.is_(None)).values(revoked_at=now))
        return result.rowcount == 1

    async def sessions(self, *, now: int) -> list[tuple[WebSession, Principal]]:
        """Sessions not revoked or expired, newest first."""
        rows = await self._conn.execute(
            select(web_sessions, principals).join(principals, principals.c.id == web_sessions.c.principal_id)
            .where(web_sessions.c.revoked_at.is_(None), web_sessions.c.expires_at > now)
            .order_by(web_sessions.c.id.desc()))
        out = []
        for row in rows:
            mapping = row._mapping
            out.append((WebSession(mapping[web_sessions.c.id], mapping[web_sessions.c.principal_id],
                                   mapping[web_sessions.c.csrf], mapping[web_sessions.c.created_at],
                                   mapping[web_sessions.c.expires_at], None, mapping[web_sessions.c.user_agent]),
                        _principal_of(mapping)))
        return out


def _principal_of(mapping) -> Principal:
    return Principal(mapping[principals.c.id], mapping[principals.c.kind], mapping[principals.c.handle],
                     mapping[principals.c.display_name], mapping[principals.c.profile],
                     mapping[principals.c.disabled], mapping[principals.c.created_at])
