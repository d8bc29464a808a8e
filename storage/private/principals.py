"""People and agents of the company, and the bearer tokens that authenticate them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import AlreadyExists, NotFound
from storage.private.tables import admin_tokens, app_agents, principal_tokens, principals
from storage.results import inserted_id

__all__ = ["AdminTokenRecord", "AdminTokenRepository", "Principal", "PrincipalRepository", "TokenRecord",
           "TokenRepository"]

# Every client request runs this; built once, with bind parameters (storage.storage says why).
_PRINCIPAL_FOR_TOKEN = (
    select(principals, principal_tokens.c.id.label("token_id"), principal_tokens.c.prefix,
           principal_tokens.c.scopes, principal_tokens.c.created_at.label("token_created_at"),
           principal_tokens.c.expires_at)
    .join(principal_tokens, principal_tokens.c.principal_id == principals.c.id)
    .where(
        principal_tokens.c.token_hash == bindparam("token_hash"),
        principal_tokens.c.revoked_at.is_(None),
        or_(principal_tokens.c.expires_at.is_(None), principal_tokens.c.expires_at > bindparam("now")),
        principals.c.disabled.is_(False),
    )
)


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    kind: str
    handle: str
    display_name: str
    profile: str
    disabled: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    principal_id: int
    prefix: str
    scopes: frozenset[str]
    created_at: int
    expires_at: int | None
    revoked_at: int | None

    def live_at(self, now: int) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def _token(row) -> TokenRecord:
    return TokenRecord(row.id, row.principal_id, row.prefix, frozenset(row.scopes.split()), row.created_at,
                       row.expires_at, row.revoked_at)


def _principal(row) -> Principal:
    return Principal(
        id=row.id,
        kind=row.kind,
        handle=row.handle,
        display_name=row.display_name,
        profile=row.profile,
        disabled=row.disabled,
        created_at=row.created_at,
    )


class PrincipalRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(
        self, *, kind: str, handle: str, display_name: str, profile: str, now: int
    ) -> Principal:
        values: dict[str, Any] = dict(
            kind=kind, handle=handle, display_name=display_name, profile=profile,
            disabled=False, created_at=now,
        )
        if await self._find(kind, handle) is not None:
            raise AlreadyExists(kind, handle)
        try:  # the constraint still decides a race between two writers
            result = await self._conn.execute(principals.insert().values(**values))
        except IntegrityError:
            raise AlreadyExists(kind, handle) from None
        return Principal(id=inserted_id(result), **values)

    async def _find(self, kind: str, handle: str) -> Principal | None:
        row = (
            await self._conn.execute(
                select(principals).where(principals.c.kind == kind, principals.c.handle == handle)
            )
        ).first()
        return None if row is None else _principal(row)

    async def get(self, kind: str, handle: str) -> Principal:
        found = await self._find(kind, handle)
        if found is None:
            raise NotFound(kind, handle)
        return found

    async def by_ids(self, ids: list[int]) -> list[Principal]:
        rows = await self._conn.execute(select(principals).where(principals.c.id.in_(ids)))
        return [_principal(r) for r in rows]

    async def all(self, kind: str | None = None) -> list[Principal]:
        query = select(principals).order_by(principals.c.kind, principals.c.handle)
        if kind is not None:
            query = query.where(principals.c.kind == kind)
        return [_principal(r) for r in await self._conn.execute(query)]

    async def rename(self, principal_id: int, *, display_name: str | None, profile: str | None) -> None:
        values = {k: v for k, v in (("display_name", display_name), ("profile", profile)) if v is not None}
        if values:
            await self._conn.execute(update(principals).where(principals.c.id == principal_id).values(**values))

    async def set_disabled(self, principal_id: int, disabled: bool) -> None:
        await self._conn.execute(
            update(principals).where(principals.c.id == principal_id).values(disabled=disabled)
        )

    async def app_agents(self, app_id: int) -> list[Principal]:
        """The agents application `app_id` may act as, by handle."""
        rows = await self._conn.execute(
            select(principals).join(app_agents, app_agents.c.agent_id == principals.c.id)
            .where(app_agents.c.app_id == app_id).order_by(principals.c.handle))
        return [_principal(r) for r in rows]

    async def set_app_agents(self, app_id: int, agent_ids: list[int]) -> None:
        await self._conn.execute(delete(app_agents).where(app_agents.c.app_id == app_id))
        if agent_ids:
            await self._conn.execute(app_agents.insert(), [{"app_id": app_id, "agent_id": a} for a in agent_ids])


class TokenRepository:
    """Principal tokens, by their SHA-256. A token works while it is not revoked, not expired
    and its principal is not disabled."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, principal_id: int, *, token_hash: str, prefix: str, scopes: frozenset[str],
                  expires_at: int | None, now: int) -> TokenRecord:
        values: dict[str, Any] = dict(principal_id=principal_id, token_hash=token_hash, prefix=prefix, created_at=now,
                      scopes=" ".join(sorted(scopes)), expires_at=expires_at)
        result = await self._conn.execute(principal_tokens.insert().values(**values))
        return TokenRecord(inserted_id(result), principal_id, prefix, frozenset(scopes), now,
                           expires_at, None)

    async def list_for(self, principal_id: int) -> list[TokenRecord]:
        rows = await self._conn.execute(
            select(principal_tokens).where(principal_tokens.c.principal_id == principal_id)
            .order_by(principal_tokens.c.id)
        )
        return [_token(r) for r in rows]

    async def revoke(self, principal_id: int, token_id: int, *, now: int) -> TokenRecord:
        """Revoke one token of this principal (again is a no-op); NotFound if it has no such token."""
        await self._conn.execute(
            update(principal_tokens)
            .where(principal_tokens.c.id == token_id, principal_tokens.c.principal_id == principal_id,
                   principal_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        row = (await self._conn.execute(select(principal_tokens).where(
            principal_tokens.c.id == token_id, principal_tokens.c.principal_id == principal_id))).first()
        if row is None:
            raise NotFound("token", str(token_id))
        return _token(row)

    async def revoke_all(self, principal_id: int, *, now: int) -> int:
        result = await self._conn.execute(
            update(principal_tokens)
            .where(
                principal_tokens.c.principal_id == principal_id,
                principal_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return result.rowcount

    async def principal_for(self, token_hash: str, *, now: int) -> tuple[Principal, TokenRecord] | None:
        row = (await self._conn.execute(_PRINCIPAL_FOR_TOKEN, {"token_hash": token_hash, "now": now})).first()
        if row is None:
            return None
        token = TokenRecord(row.token_id, row.id, row.prefix, frozenset(row.scopes.split()),
                            row.token_created_at, row.expires_at, None)
        return _principal(row), token


@dataclass(frozen=True, slots=True)
class AdminTokenRecord:
    id: int
    prefix: str
    name: str | None  # None: an owner token made by `init` or `admin-token`
    role: str
    created_at: int
    revoked_at: int | None


class AdminTokenRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, token_hash: str, prefix: str, now: int, name: str | None = None,
                  role: str = "owner") -> None:
        await self._conn.execute(
            admin_tokens.insert().values(token_hash=token_hash, prefix=prefix, created_at=now, name=name, role=role)
        )

    async def live(self, token_hash: str) -> AdminTokenRecord | None:
        """The live admin token with this digest, or None."""
        row = (await self._conn.execute(select(admin_tokens).where(
            admin_tokens.c.token_hash == token_hash, admin_tokens.c.revoked_at.is_(None)))).first()
        return _admin_token(row) if row is not None else None

    async def named(self) -> list[AdminTokenRecord]:
        """Named operators' tokens, live or revoked, oldest first."""
        rows = await self._conn.execute(select(admin_tokens).where(admin_tokens.c.name.is_not(None))
                                        .order_by(admin_tokens.c.id))
        return [_admin_token(r) for r in rows]

    async def revoke_named(self, name: str, *, now: int) -> int:
        """Revoke the live tokens of operator `name`; how many."""
        result = await self._conn.execute(update(admin_tokens).where(
            admin_tokens.c.name == name, admin_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
        return result.rowcount

    async def prefix_of(self, token_hash: str) -> str | None:
        """The clear prefix of a live admin token with this digest, or None."""
        return await self._conn.scalar(
            select(admin_tokens.c.prefix).where(
                admin_tokens.c.token_hash == token_hash, admin_tokens.c.revoked_at.is_(None)
            )
        )

    async def revoke_all(self, *, now: int) -> int:
        result = await self._conn.execute(
            update(admin_tokens).where(admin_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        return result.rowcount


def _admin_token(row: Any) -> AdminTokenRecord:
    return AdminTokenRecord(row.id, row.prefix, row.name, row.role, row.created_at, row.revoked_at)

