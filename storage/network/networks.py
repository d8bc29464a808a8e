"""Networks as this node holds them: the network row with its chain head, and the projections
of its state that queries need (members, participants, shared threads).

The projections are rewritten from `federation.rules.NetworkState` in the same transaction as
the event that changed it, so they never disagree with the event log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import AlreadyExists, NotFound
from storage.network.tables import (
    network_members,
    network_participants,
    networks,
    shared_thread_participants,
    shared_threads,
    thread_consents,
)
from storage.results import inserted_id

__all__ = ["NetworkRecord", "NetworkRepository", "SharedThreadRecord"]


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    id: int
    host: str
    name: str
    title: str
    closed: bool
    history_visible: bool
    head_seq: int
    head_hash: bytes | None
    created_at: int
    head_ts: int = 0  # the host's time of the head event
    frozen_at: int | None = None  # this company froze it (local: its own people and agents cannot act)
    archived_at: int | None = None  # this company put it away once closed (local: out of the lists)


@dataclass(frozen=True, slots=True)
class SharedThreadRecord:
    network: str
    name: str
    title: str
    closed: bool
    participants: tuple[str, ...]
    agents_silenced: bool = False


# Statements run for every message are built once, with bind parameters (storage.storage says why).
_FIND = select(networks).where(networks.c.name == bindparam("name"))
_FIND_FOR_UPDATE = _FIND.with_for_update()  # PostgreSQL: serialise sequencing across node processes
_NAMES_BY_ID = select(networks.c.id, networks.c.name).where(networks.c.id.in_(bindparam("ids", expanding=True)))
_SET_HEAD = update(networks).where(networks.c.id == bindparam("network_id")).values(
    head_seq=bindparam("new_seq"), head_hash=bindparam("new_hash"), head_ts=bindparam("new_ts"))
_PARTICIPANT_IN_THREAD = (
    select(networks.c.id, thread_consents.c.status)
    .join(shared_threads, shared_threads.c.network_id == networks.c.id)
    .join(shared_thread_participants, shared_thread_participants.c.thread_id == shared_threads.c.id)
    .outerjoin(thread_consents, (thread_consents.c.network_id == networks.c.id)
               & (thread_consents.c.thread == shared_threads.c.name))
    .where(networks.c.name == bindparam("network"), shared_threads.c.name == bindparam("thread"),
           shared_thread_participants.c.participant == bindparam("participant"))
)


def _network(row) -> NetworkRecord:
    return NetworkRecord(
        row.id, row.host, row.name, row.title, row.closed, row.history_visible,
        row.head_seq, row.head_hash, row.created_at, row.head_ts, row.frozen_at, row.archived_at,
    )


class NetworkRepository:
    """Networks, with one twist: a head moved in a transaction is written by `flush`, just
    before commit, so a batch of events for one network updates its row once, not per event.
    Until then this repository's reads show the moved head."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._heads: dict[int, tuple[int, bytes, int]] = {}

    def _record(self, row) -> NetworkRecord:
        record = _network(row)
        moved = self._heads.get(record.id)
        return record if moved is None else replace(record, head_seq=moved[0], head_hash=moved[1], head_ts=moved[2])

    async def create(self, *, host: str, name: str, title: str, history_visible: bool, now: int) -> NetworkRecord:
        """Names are unique on a node: events name their network by name alone."""
        if await self.find(name) is not None:
            raise AlreadyExists("network", name)
        values: dict[str, Any] = dict(host=host, name=name, title=title, closed=False,
                      history_visible=history_visible, head_seq=0, head_hash=None, created_at=now, head_ts=0)
        try:
            result = await self._conn.execute(networks.insert().values(**values))
        except IntegrityError:
            raise AlreadyExists("network", name) from None
        return NetworkRecord(id=inserted_id(result), **values)

    async def find(self, name: str, *, for_update: bool = False) -> NetworkRecord | None:
        row = (await self._conn.execute(_FIND_FOR_UPDATE if for_update else _FIND, {"name": name})).first()
        return None if row is None else self._record(row)

    async def get(self, name: str, *, for_update: bool = False) -> NetworkRecord:
        found = await self.find(name, for_update=for_update)
        if found is None:
            raise NotFound("network", name)
        return found

    async def all(self) -> list[NetworkRecord]:
        rows = await self._conn.execute(select(networks).order_by(networks.c.name))
        return [self._record(r) for r in rows]

    async def names_by_id(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = await self._conn.execute(_NAMES_BY_ID, {"ids": list(ids)})
        return {r.id: r.name for r in rows}

    async def set_head(self, network_id: int, *, seq: int, link_hash: bytes, host_ts: int) -> None:
        self._heads[network_id] = (seq, link_hash, host_ts)

    async def flush(self) -> None:
        """Write the heads moved in this transaction."""
        heads, self._heads = self._heads, {}
        for network_id, (seq, link_hash, host_ts) in sorted(heads.items()):
            await self._conn.execute(_SET_HEAD, {"network_id": network_id, "new_seq": seq, "new_hash": link_hash,
                                                 "new_ts": host_ts})

    async def set_closed(self, network_id: int, closed: bool) -> None:
        await self._conn.execute(update(networks).where(networks.c.id == network_id).values(closed=closed))

    async def set_frozen(self, network_id: int, frozen_at: int | None) -> None:
        await self._conn.execute(update(networks).where(networks.c.id == network_id).values(frozen_at=frozen_at))

    async def set_archived(self, network_id: int, archived_at: int | None) -> None:
        await self._conn.execute(update(networks).where(networks.c.id == network_id).values(archived_at=archived_at))

    async def delete(self, network_id: int) -> None:
        self._heads.pop(network_id, None)
        await self._conn.execute(delete(networks).where(networks.c.id == network_id))

    # Projections

    async def set_member(self, network_id: int, server: str, status: str, *, now: int) -> None:
        existing = await self._conn.scalar(
            select(network_members.c.status).where(
                network_members.c.network_id == network_id, network_members.c.server == server
            )
        )
        if existing is None:
            await self._conn.execute(
                network_members.insert().values(network_id=network_id, server=server, status=status, updated_at=now)
            )
        elif existing != status:
            await self._conn.execute(
                update(network_members)
                .where(network_members.c.network_id == network_id, network_members.c.server == server)
                .values(status=status, updated_at=now)
            )

    async def members(self, network_id: int) -> dict[str, str]:
        rows = await self._conn.execute(
            select(network_members.c.server, network_members.c.status).where(network_members.c.network_id == network_id)
        )
        return {r.server: r.status for r in rows}

    async def set_participant(self, network_id: int, participant: str, *, display_name: str, attached: bool) -> None:
        where = and_(network_participants.c.network_id == network_id, network_participants.c.participant == participant)
        exists = await self._conn.scalar(select(network_participants.c.participant).where(where))
        if exists is None:
            await self._conn.execute(
                network_participants.insert().values(
                    network_id=network_id, participant=participant, display_name=display_name, attached=attached
                )
            )
        else:
            await self._conn.execute(
                update(network_participants).where(where).values(display_name=display_name, attached=attached)
            )

    async def participants(self, network_id: int) -> dict[str, tuple[str, bool]]:
        rows = await self._conn.execute(select(network_participants).where(network_participants.c.network_id == network_id))
        return {r.participant: (r.display_name, r.attached) for r in rows}

    async def open_thread(self, network_id: int, *, name: str, title: str, participants: list[str], now: int) -> None:
        result = await self._conn.execute(
            shared_threads.insert().values(network_id=network_id, name=name, title=title, closed=False, created_at=now)
        )
        thread_id = inserted_id(result)
        if participants:
            await self._conn.execute(
                shared_thread_participants.insert(),
                [{"thread_id": thread_id, "participant": p} for p in sorted(set(participants))],
            )

    async def add_thread_participants(self, network_id: int, name: str, participants: list[str]) -> None:
        thread_id = await self._conn.scalar(select(shared_threads.c.id).where(
            shared_threads.c.network_id == network_id, shared_threads.c.name == name))
        await self._conn.execute(shared_thread_participants.insert(),
                                 [{"thread_id": thread_id, "participant": p} for p in sorted(set(participants))])

    async def close_thread(self, network_id: int, name: str) -> None:
        await self._conn.execute(
            update(shared_threads)
            .where(shared_threads.c.network_id == network_id, shared_threads.c.name == name)
            .values(closed=True)
        )

    async def set_agents_silenced(self, network_id: int, name: str, silenced: bool) -> None:
        await self._conn.execute(
            update(shared_threads)
            .where(shared_threads.c.network_id == network_id, shared_threads.c.name == name)
            .values(agents_silenced=silenced)
        )

    async def threads(self, network_id: int) -> list[SharedThreadRecord]:
        return await self._threads(shared_threads.c.network_id == network_id)

    async def threads_of_participant(self, participant: str) -> list[SharedThreadRecord]:
        return await self._threads(
            shared_threads.c.id.in_(
                select(shared_thread_participants.c.thread_id).where(
                    shared_thread_participants.c.participant == participant
                )
            )
        )

    async def network_id_if_participant(self, network: str, thread: str, participant: str) -> int | None:
        """The network's row id if `participant` takes part in its thread `thread` and the thread
        is not held back from this company (`node.federation.consent`), else None."""
        row = (await self._conn.execute(_PARTICIPANT_IN_THREAD,
                                        {"network": network, "thread": thread, "participant": participant})).first()
        return row.id if row is not None and row.status in (None, "accepted") else None

    async def _threads(self, condition) -> list[SharedThreadRecord]:
        rows = (
            await self._conn.execute(
                select(shared_threads, networks.c.name.label("network_name"))
                .join(networks, networks.c.id == shared_threads.c.network_id)
                .where(condition)
                .order_by(networks.c.name, shared_threads.c.name)
            )
        ).all()
        members: dict[int, list[str]] = {r.id: [] for r in rows}
        if members:
            pairs = await self._conn.execute(
                select(shared_thread_participants).where(shared_thread_participants.c.thread_id.in_(list(members)))
            )
            for pair in pairs:
                members[pair.thread_id].append(pair.participant)
        return [
            SharedThreadRecord(r.network_name, r.name, r.title, r.closed, tuple(sorted(members[r.id])),
                               r.agents_silenced)
            for r in rows
        ]
