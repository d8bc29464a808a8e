"""What a caller may see of the node's activity feed, from a cursor on.

Visibility is decided when reading, with the caller's current memberships: private threads it
belongs to, shared threads it takes part in, network-wide events of networks it is attached
to. A cursor is a feed position. Below the floor (pruned) or above the head (a cursor from
another node or a restored backup) it is answered 410 with what to do, never silently reset.
"""

from __future__ import annotations

import time

from federation.event_content import MessageEdited, MessagePosted
from node.basics.clock import Clock
from node.basics.errors import Gone
from node.federation.chain_state import STUB_TYPE, stored_view
from node.feed.filters import FeedFilter
from node.feed.hub import FeedHub
from node.feed.models import EventOut, EventPage
from node.workspace.directory import Directory
from storage.feed import FeedEntry
from storage.private.principals import Principal
from storage.storage import Storage, Transaction

__all__ = ["CursorExpired", "CursorUnknown", "FeedService"]

_WITH_BODY = frozenset({MessagePosted.event_type, MessageEdited.event_type})


class CursorExpired(Gone):
    code = "cursor_expired"


class CursorUnknown(Gone):
    code = "cursor_unknown"


# Pages of the feed one filtered call reads past events the filter leaves out.
_FILTERED_PAGES = 10


class FeedService:
    def __init__(self, storage: Storage, clock: Clock, directory: Directory, hub: FeedHub, *,
                 poll_interval_s: float = 1.0) -> None:
        self._storage = storage
        self._clock = clock
        self._directory = directory
        self.hub = hub
        self._poll_s = poll_interval_s

    async def read(self, caller: Principal, after: str | None, *, limit: int,
                   only: FeedFilter | None = None) -> EventPage:
        """Events after `after` (None: from now, an empty page with the current cursor);
        `only`: what the filter keeps, reading on past the rest (up to `_FILTERED_PAGES` pages
        of the feed per call, so a long backlog costs bounded time)."""
        if only is None or not only.active or after is None:
            return (await self._page(caller, after, limit=limit))[0]
        me = self._directory.participant_id(caller)
        found: list[EventOut] = []
        cursor = after
        for _ in range(_FILTERED_PAGES):
            page, full = await self._page(caller, cursor, limit=limit)
            found += [e for e in page.items if only.matches(e, me)]
            cursor = page.next_cursor
            if not full or len(found) >= limit:
                break
        if len(found) > limit:
            found, cursor = found[:limit], found[limit - 1].cursor
        return EventPage(items=found, next_cursor=cursor)

    async def _page(self, caller: Principal, after: str | None, *, limit: int) -> tuple[EventPage, bool]:
        """One page of the caller's feed, and whether it was full (more may follow at once)."""
        async with self._storage.read_transaction() as tx:
            floor, head = await tx.feed.bounds()  # read first: every position <= head is committed
            if after is None:
                return EventPage(items=[], next_cursor=str(head)), False
            position = int(after)
            if position < floor:
                raise CursorExpired(
                    f"cursor {position} is older than what this node keeps (from {floor}); read the "
                    "threads' messages to catch up, then resume from a fresh cursor (omit `after`)")
            if position > head:
                raise CursorUnknown(
                    f"cursor {position} is ahead of this node's feed (at {head}); it was not issued "
                    "here or the node was restored from a backup: start again without `after`")
            if caller.kind == "app":
                entries, audience = await self._visible_to_agents(tx, caller, position, limit=limit)
            else:
                entries, audience = await tx.feed.visible_after(
                    position, principal_id=caller.id, participant=self._directory.participant_id(caller),
                    limit=limit), None
            events = await self._hydrate(tx, entries, audience)
        if len(entries) == limit:
            next_position = entries[-1].position
        else:  # nothing visible up to head: skip past it
            next_position = max(head, entries[-1].position if entries else position)
        return EventPage(items=events, next_cursor=str(next_position)), len(entries) == limit

    async def _visible_to_agents(self, tx: Transaction, app: Principal, after: int, *,
                                 limit: int) -> tuple[list[FeedEntry], dict[int, list[str]]]:
        """An application's page: what any of its (enabled) agents may see, each row with the
        agents it concerns. Each agent's view is read up to `limit` and the first `limit`
        positions of their union taken: an agent whose view filled its page reaches at least
        as far as the union's last position, so nothing before the next cursor is skipped."""
        rows: dict[int, FeedEntry] = {}
        audience: dict[int, list[str]] = {}
        for agent in await tx.principals.app_agents(app.id):
            if agent.disabled:
                continue
            participant = self._directory.participant_id(agent)
            for entry in await tx.feed.visible_after(after, principal_id=agent.id, participant=participant,
                                                     limit=limit):
                rows.setdefault(entry.position, entry)
                audience.setdefault(entry.position, []).append(participant)
        return [rows[p] for p in sorted(rows)[:limit]], audience

    async def threads_changed(self, after: int | None, *, limit: int = 500) -> tuple[list[tuple[str, str]], int]:
        """Shared threads (network, thread) with feed rows after `after` (None: from now), and the
        position to pass next. For change notifications only: it says nothing of what changed,
        and who may read it is checked by whoever listens (`node.mcp.resources`)."""
        async with self._storage.read_transaction() as tx:
            _floor, head = await tx.feed.bounds()
            if after is None:
                return [], head
            rows = await tx.feed.threads_after(after, upto=head, limit=limit)
        next_position = rows[-1][0] if len(rows) == limit else head
        return [(network, thread) for _p, network, thread in rows], next_position

    async def wait(self, caller: Principal, after: str | None, *, limit: int, timeout_s: float,
                   only: FeedFilter | None = None) -> EventPage:
        """Like `read`, but wait up to `timeout_s` for something to show."""
        deadline = time.monotonic() + timeout_s
        while True:
            waiter = self.hub.waiter()
            page = await self.read(caller, after, limit=limit, only=only)
            remaining = deadline - time.monotonic()
            if page.items or remaining <= 0 or self.hub.closed:
                return page
            after = page.next_cursor
            await self.hub.wait(waiter, min(remaining, self._poll_s))

    async def _hydrate(self, tx: Transaction, entries: list[FeedEntry],
                       audience: dict[int, list[str]] | None) -> list[EventOut]:
        private = await tx.private_threads.messages_by_ids(
            [e.private_message_id for e in entries if e.private_message_id is not None])
        thread_names = await tx.private_threads.names_by_id({m.thread_id for m in private.values()})
        senders = await self._directory.ids_to_names(tx, [m.sender_id for m in private.values()])
        out = []
        for entry in entries:
            if entry.event is not None and entry.event.type == STUB_TYPE:
                continue  # a message whose body retention removed: nothing left to show
            if entry.event is not None:
                stored = entry.event
                content, sequenced_at = stored_view(stored.wire)
                body = content.get("body") if stored.type in _WITH_BODY else None
                mentioned = content.get("mentions", []) if stored.type == "message.posted" else []
                out.append(EventOut(
                    cursor=str(entry.position), scope="shared", type=stored.type,
                    network=entry.network_name, thread=stored.thread, id=stored.event_id, seq=stored.seq,
                    sender=stored.sender, body=body, mentions=mentioned, content=content, created_at=stored.origin_ts,
                    sequenced_at=sequenced_at, audience=None if audience is None else audience[entry.position],
                ))
            elif entry.private_message_id is not None and entry.private_message_id in private:
                message = private[entry.private_message_id]
                out.append(EventOut(
                    cursor=str(entry.position), scope="private", type="message.posted", network=None,
                    thread=thread_names.get(message.thread_id), id=str(message.id), seq=None,
                    sender=senders[message.sender_id], body=message.body, content={"body": message.body},
                    created_at=message.created_at, audience=None if audience is None else audience[entry.position],
                ))
        return out
