"""Signing people in to the web app: one-time links the operator makes, then a session cookie.

A link holds a 256-bit token (stored hashed, like every token), works once, and lapses after
15 minutes. Opening it shows a page with a button; only the button's POST uses the link, so a
mail scanner or a chat preview that fetches the URL does not sign anyone in or spend the link.
The session the POST opens is another random token, sent as an HttpOnly, SameSite=Strict
cookie (Secure under TLS) and stored hashed; with it comes a form token (`csrf`) that every
state-changing form must carry back. Sessions last 7 days, end at sign-out, when the operator
revokes them, or when the person is disabled. Agents do not sign in: they have tokens.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, Field

from node.basics.clock import Clock
from node.basics.errors import Forbidden, NotFoundError
from node.workspace.directory import Directory
from node.workspace.tokens import hash_token
from storage.errors import NotFound
from storage.private.principals import Principal
from storage.private.web import WebSession
from storage.storage import Storage, Transaction

__all__ = ["LINK_LIFETIME_MS", "SESSION_LIFETIME_MS", "SignInLink", "WebSessionList", "WebSessionOut", "WebSessions",
           "csrf_matches"]

LINK_LIFETIME_MS = 15 * 60 * 1000
SESSION_LIFETIME_MS = 7 * 24 * 3600 * 1000


class SignInLink(BaseModel):
    url: str = Field(description="open it in a browser, once, within 15 minutes; send it to the person only")
    expires_at: int


class WebSessionOut(BaseModel):
    id: str
    person: str
    created_at: int
    expires_at: int
    user_agent: str


class WebSessionList(BaseModel):
    items: list[WebSessionOut]


@dataclass(frozen=True, slots=True)
class Opened:
    token: str  # the cookie's value; only its hash is stored
    session: WebSession


def csrf_matches(expected: str, given: str | None) -> bool:
    """A form's token against its session's, in constant time (the web app's and the console's)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class WebSessions:
    def __init__(self, storage: Storage, clock: Clock, directory: Directory, *, web_url: str) -> None:
        self._storage = storage
        self._clock = clock
        self._directory = directory
        self._web_url = web_url.rstrip("/")

    async def make_link(self, handle: str, *, actor: str) -> SignInLink:
        now = self._clock.now_ms()
        token = secrets.token_urlsafe(32)
        async with self._storage.transaction() as tx:
            person = await tx.principals.get("person", handle)
            if person.disabled:
                raise Forbidden(f"person {handle!r} is disabled; enable them first")
            await tx.web.add_link(person.id, token_hash=hash_token(token), now=now, expires_at=now + LINK_LIFETIME_MS)
            await tx.audit.record(actor=actor, action="person.sign_in_link", target=self._directory.participant_id(person),
                                  now=now)
        return SignInLink(url=f"{self._web_url}/app/sign-in?token={token}", expires_at=now + LINK_LIFETIME_MS)

    async def sign_in(self, link_token: str, *, user_agent: str) -> tuple[Opened, Principal] | None:
        """A session for the link's person, or None: the link is unknown, used or expired."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal_id = await tx.web.use_link(hash_token(link_token), now=now)
            if principal_id is None:
                return None
            return await self._open(tx, principal_id, user_agent=user_agent, via="link", now=now)

    async def open_for(self, handle: str, *, user_agent: str, via: str) -> tuple[Opened, Principal] | None:
        """A session for a person another proof of identity vouched for: the extension point
        for the company's own identity provider (docs/web.md, "Signing in"), which would call it
        after verifying its ID token and mapping a claim to a handle. None: no such enabled person."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            try:
                person = await tx.principals.get("person", handle)
            except NotFound:
                return None
            return await self._open(tx, person.id, user_agent=user_agent, via=via, now=now)

    async def _open(self, tx: Transaction, principal_id: int, *, user_agent: str, via: str,
                    now: int) -> tuple[Opened, Principal] | None:
        token = secrets.token_urlsafe(32)
        session = await tx.web.add_session(principal_id, token_hash=hash_token(token), csrf=secrets.token_urlsafe(24),
                                           now=now, expires_at=now + SESSION_LIFETIME_MS, user_agent=user_agent)
        found = await tx.web.live(hash_token(token), now=now)
        if found is None:  # disabled (in between)
            await tx.web.revoke(session.id, now=now)
            return None
        if found[1].kind != "person":
            await tx.web.revoke(session.id, now=now)
            return None
        await tx.audit.record(actor=self._directory.participant_id(found[1]), action="person.sign_in",
                              target=self._directory.participant_id(found[1]), now=now,
                              detail={"session": str(session.id), "via": via})
        return Opened(token, session), found[1]

    async def link_usable(self, link_token: str) -> bool:
        """Whether the link would still sign someone in (it is not used by asking)."""
        async with self._storage.read_transaction() as tx:
            return await tx.web.link_usable(hash_token(link_token), now=self._clock.now_ms())

    async def session(self, cookie: str | None) -> tuple[WebSession, Principal] | None:
        if not cookie or len(cookie) > 100:
            return None
        async with self._storage.read_transaction() as tx:
            return await tx.web.live(hash_token(cookie), now=self._clock.now_ms())

    async def seen(self, person: Principal) -> dict[tuple[str, str], int]:
        async with self._storage.read_transaction() as tx:
            return await tx.web.seen(person.id)

    async def mark_seen(self, person: Principal, network: str, thread: str, seq: int) -> None:
        async with self._storage.transaction() as tx:
            await tx.web.mark_seen(person.id, network, thread, seq)

    async def sign_out(self, session: WebSession) -> None:
        async with self._storage.transaction() as tx:
            await tx.web.revoke(session.id, now=self._clock.now_ms())

    async def sessions(self) -> WebSessionList:
        async with self._storage.read_transaction() as tx:
            found = await tx.web.sessions(now=self._clock.now_ms())
        return WebSessionList(items=[
            WebSessionOut(id=str(s.id), person=self._directory.participant_id(p), created_at=s.created_at,
                          expires_at=s.expires_at, user_agent=s.user_agent) for s, p in found])

    async def revoke(self, session_id: int, *, actor: str) -> None:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            if not await tx.web.revoke(session_id, now=now):
                raise NotFoundError(f"no open web session {session_id}")
            await tx.audit.record(actor=actor, action="web_session.revoke", target=str(session_id), now=now)
