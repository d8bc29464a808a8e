"""Other nodes: who is a peer (default-deny), the keys pinned for each, invites in both
directions, and how delivery to each is going."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import NotFound
from storage.network.tables import (
    delivery_status,
    network_invites,
    outbox,
    peer_key_documents,
    peer_keys,
    peers,
)

__all__ = ["DeliveryStatus", "Invite", "PeerKey", "PeerRecord", "PeerRepository"]

# Statements run for every message are built once, with bind parameters (storage.storage says why).
_FIND = select(peers).where(peers.c.server == bindparam("server"))
_BLOCKED = select(peers.c.server).where(peers.c.status == "blocked")
_KEYS = select(peer_keys).where(peer_keys.c.server == bindparam("server")).order_by(peer_keys.c.pinned_at)
_DELIVERY = select(delivery_status).where(delivery_status.c.server == bindparam("server"))
_RECORD_SUCCESS = update(delivery_status).where(delivery_status.c.server == bindparam("peer")).values(
    failures=0, last_success_at=bindparam("now"), next_attempt_at=None)


@dataclass(frozen=True, slots=True)
class PeerRecord:
    server: str
    status: str  # "accepted" | "blocked"
    endpoint: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class PeerKey:
    server: str
    key_id: str
    public_key: bytes
    pinned_at: int
    valid_until: int | None
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class Invite:
    id: str
    direction: str
    network: str
    host: str
    title: str
    server: str
    endpoint: str
    key_id: str
    public_key: bytes
    status: str
    created_at: int
    expires_at: int
    updated_at: int
    history_visible: bool = True  # what the invite said of the network's earlier history


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    server: str
    failures: int
    last_success_at: int | None
    last_error: str | None
    last_error_at: int | None
    next_attempt_at: int | None


class PeerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    # Peers

    async def find(self, server: str) -> PeerRecord | None:
        row = (await self._conn.execute(_FIND, {"server": server})).first()
        return None if row is None else PeerRecord(row.server, row.status, row.endpoint, row.created_at, row.updated_at)

    async def blocked_among(self, servers: Iterable[str]) -> set[str]:
        """Which of `servers` this node blocked. One query for a whole fan-out, over the blocked
        peers (a handful at most) rather than with an IN list, which SQLAlchemy expands anew on
        every call."""
        wanted = set(servers)
        return {r.server for r in await self._conn.execute(_BLOCKED) if r.server in wanted}

    async def all(self) -> list[PeerRecord]:
        rows = await self._conn.execute(select(peers).order_by(peers.c.server))
        return [PeerRecord(r.server, r.status, r.endpoint, r.created_at, r.updated_at) for r in rows]

    async def upsert(self, server: str, *, status: str, endpoint: str | None, now: int) -> None:
        existing = await self.find(server)
        if existing is None:
            await self._conn.execute(
                peers.insert().values(server=server, status=status, endpoint=endpoint or "", created_at=now, updated_at=now)
            )
        else:
            values = {"status": status, "updated_at": now}
            if endpoint:
                values["endpoint"] = endpoint
            await self._conn.execute(update(peers).where(peers.c.server == server).values(**values))

    async def forget(self, server: str) -> None:
        """Drop the peer record (an accept that never reached the host undoes its pin)."""
        await self._conn.execute(delete(peers).where(peers.c.server == server))

    # Keys

    async def unpin_key(self, server: str, key_id: str) -> None:
        await self._conn.execute(delete(peer_keys).where(peer_keys.c.server == server, peer_keys.c.key_id == key_id))

    async def pin_key(self, server: str, *, key_id: str, public_key: bytes, valid_until: int | None,
                      revoked_at: int | None = None, now: int) -> None:
        existing = (
            await self._conn.execute(
                select(peer_keys).where(peer_keys.c.server == server, peer_keys.c.key_id == key_id)
            )
        ).first()
        if existing is None:
            await self._conn.execute(
                peer_keys.insert().values(server=server, key_id=key_id, public_key=public_key, pinned_at=now,
                                          valid_until=valid_until, revoked_at=revoked_at)
            )
        elif existing.public_key != public_key:
            raise ValueError(f"key {key_id} of {server} is pinned with different bytes")
        else:
            await self._conn.execute(
                update(peer_keys).where(peer_keys.c.server == server, peer_keys.c.key_id == key_id)
                .values(valid_until=valid_until, revoked_at=existing.revoked_at or revoked_at)
            )

    async def revoke_keys(self, server: str, key_ids: Iterable[str], *, now: int) -> None:
        """The company revoked these keys: they verify nothing from now on."""
        wanted = list(key_ids)
        if wanted:
            await self._conn.execute(
                update(peer_keys).where(peer_keys.c.server == server, peer_keys.c.key_id.in_(wanted),
                                        peer_keys.c.revoked_at.is_(None)).values(revoked_at=now))

    async def keys(self, server: str) -> list[PeerKey]:
        rows = await self._conn.execute(_KEYS, {"server": server})
        return [PeerKey(r.server, r.key_id, r.public_key, r.pinned_at, r.valid_until, r.revoked_at) for r in rows]

    async def key_document(self, server: str) -> tuple[bytes, int] | None:
        row = (await self._conn.execute(select(peer_key_documents).where(peer_key_documents.c.server == server))).first()
        return None if row is None else (row.document, row.ts)

    async def save_key_document(self, server: str, document: bytes, *, ts: int, now: int) -> None:
        if await self.key_document(server) is None:
            await self._conn.execute(peer_key_documents.insert().values(server=server, document=document, ts=ts,
                                                                        fetched_at=now))
        else:
            await self._conn.execute(update(peer_key_documents).where(peer_key_documents.c.server == server)
                                     .values(document=document, ts=ts, fetched_at=now))

    # Invites

    async def add_invite(self, invite: Invite) -> None:
        await self._conn.execute(network_invites.insert().values(
            id=invite.id, direction=invite.direction, network=invite.network, host=invite.host,
            title=invite.title, server=invite.server, endpoint=invite.endpoint, key_id=invite.key_id,
            public_key=invite.public_key, status=invite.status, created_at=invite.created_at,
            expires_at=invite.expires_at, updated_at=invite.updated_at, history_visible=invite.history_visible,
        ))

    async def delete_invite(self, invite_id: str) -> None:
        await self._conn.execute(delete(network_invites).where(network_invites.c.id == invite_id))

    async def invite(self, invite_id: str) -> Invite:
        row = (await self._conn.execute(select(network_invites).where(network_invites.c.id == invite_id))).first()
        if row is None:
            raise NotFound("invite", invite_id)
        return _invite(row)

    async def invites(self, *, direction: str | None = None, status: str | None = None) -> list[Invite]:
        query = select(network_invites).order_by(network_invites.c.created_at)
        if direction:
            query = query.where(network_invites.c.direction == direction)
        if status:
            query = query.where(network_invites.c.status == status)
        return [_invite(r) for r in await self._conn.execute(query)]

    async def set_invite_status(self, invite_id: str, status: str, *, now: int) -> None:
        await self._conn.execute(
            update(network_invites).where(network_invites.c.id == invite_id).values(status=status, updated_at=now)
        )

    async def count_pending_incoming(self, server: str) -> int:
        return (await self._conn.execute(
            select(func.count()).where(
                network_invites.c.direction == "incoming", network_invites.c.server == server,
                network_invites.c.status == "pending",
            )
        )).scalar_one()

    # Delivery status

    async def delivery(self, server: str) -> DeliveryStatus:
        row = (await self._conn.execute(_DELIVERY, {"server": server})).first()
        if row is None:
            return DeliveryStatus(server, 0, None, None, None, None)
        return DeliveryStatus(row.server, row.failures, row.last_success_at, row.last_error, row.last_error_at,
                              row.next_attempt_at)

    async def record_success(self, server: str, *, now: int) -> None:
        updated = await self._conn.execute(_RECORD_SUCCESS, {"peer": server, "now": now})
        if updated.rowcount == 0:  # the first answer of this peer
            await self._save_delivery(server, failures=0, last_success_at=now, next_attempt_at=None)

    async def record_failure(self, server: str, *, error: str, next_attempt_at: int, now: int) -> int:
        failures = (await self.delivery(server)).failures + 1
        await self._save_delivery(server, failures=failures, last_error=error[:500], last_error_at=now,
                                  next_attempt_at=next_attempt_at)
        return failures

    async def back_off(self, server: str, *, next_attempt_at: int) -> None:
        """Hold the destination until `next_attempt_at` without counting a failure (it answered,
        but refused events only for now)."""
        await self._save_delivery(server, next_attempt_at=next_attempt_at)

    async def clear_backoff(self, server: str) -> None:
        await self._conn.execute(
            update(delivery_status).where(delivery_status.c.server == server).values(next_attempt_at=None)
        )
        await self._conn.execute(
            update(outbox).where(outbox.c.destination == server, outbox.c.state == "pending").values(next_attempt_at=0)
        )

    async def _save_delivery(self, server: str, **values) -> None:
        updated = await self._conn.execute(
            update(delivery_status).where(delivery_status.c.server == server).values(**values))
        if updated.rowcount == 0:  # the first answer or failure of this peer
            await self._conn.execute(delivery_status.insert().values(server=server, **{"failures": 0, **values}))


def _invite(row) -> Invite:
    return Invite(row.id, row.direction, row.network, row.host, row.title, row.server, row.endpoint, row.key_id,
                  row.public_key, row.status, row.created_at, row.expires_at, row.updated_at, row.history_visible)
