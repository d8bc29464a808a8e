"""Typing and working indicators: who is writing or acting in a thread right now.

They are not events: nothing is signed into the chain, stored or retried, and an indicator
lapses on its own after its time to live (30 s unless refreshed), so a crashed agent never
looks busy for ever. The author's node sends each change once, over the signed federation
channel, to the host, and the host passes it to the other members (members need not peer with
each other); a lost one only means an indicator shows late or not at all.

Each node checks what it is told against its own copy: the sender is a current member; a
participant belongs to the sending company, unless the host relays it; the participant takes
part in the thread, and the thread is not held back here for consent. Anything else is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from node.basics.errors import NotAPeer, PeerRefused, PeerUnreachable
from node.federation.peer_client import PeerClient
from node.federation.standing import network_of_member
from storage.network.transaction import NetworkStore

__all__ = ["MAX_TTL_S", "Activity", "ActivityBoard", "ActivityMessage", "ActivityRelay", "State"]

log = logging.getLogger(__name__)

State = Literal["typing", "working", "idle"]
DEFAULT_TTL_S = 30
MAX_TTL_S = 60
# A node keeps indicators for this many threads at most (the least recently changed go first),
# and this many participants a thread (a thread has at most 256).
_MAX_THREADS = 10_000
_MAX_PER_THREAD = 256
_SEND_TIMEOUT_S = 5


class ActivityMessage(BaseModel):
    """What a node tells another about one participant in one thread."""

    model_config = ConfigDict(extra="forbid", strict=True)

    thread: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    participant: str = Field(max_length=340, pattern=r"^(agent|person):[a-z0-9][a-z0-9._-]{0,63}@[^\s@]{1,255}$")
    state: State
    ttl_s: int = Field(DEFAULT_TTL_S, ge=1, le=MAX_TTL_S)


@dataclass(frozen=True, slots=True)
class Activity:
    participant: str
    state: State
    expires_at: float  # monotonic


class ActivityBoard:
    """The indicators this node knows of, in memory."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._threads: OrderedDict[tuple[str, str], dict[str, Activity]] = OrderedDict()

    def set(self, network: str, thread: str, participant: str, state: State, ttl_s: int) -> None:
        key = (network, thread)
        current = self._threads.pop(key, {})
        if state == "idle":
            current.pop(participant, None)
        elif participant in current or len(current) < _MAX_PER_THREAD:
            current[participant] = Activity(participant, state, self._now() + min(ttl_s, MAX_TTL_S))
        if current:
            self._threads[key] = current
        while len(self._threads) > _MAX_THREADS:
            self._threads.popitem(last=False)

    def current(self, network: str, thread: str) -> list[Activity]:
        now = self._now()
        live = {p: a for p, a in self._threads.get((network, thread), {}).items() if a.expires_at > now}
        if (network, thread) in self._threads:
            self._threads[(network, thread)] = live
        return sorted(live.values(), key=lambda a: a.participant)


class ActivityRelay:
    def __init__(self, storage: NetworkStore, client: PeerClient, board: ActivityBoard, *, server: str) -> None:
        self._storage = storage
        self._client = client
        self.board = board
        self._server = server
        self._sending: set[asyncio.Task[None]] = set()

    async def local(self, network: str, message: ActivityMessage) -> None:
        """A participant of this node changed its indicator: show it here and tell the others."""
        self.board.set(network, message.thread, message.participant, message.state, message.ttl_s)
        await self._pass_on(network, message, came_from=self._server)

    async def received(self, origin: str, network: str, message: ActivityMessage) -> None:
        """Another node's word, checked against this node's copy; dropped quietly if it is wrong
        in a way a race explains (not in the thread yet), refused if the sender has no standing."""
        async with self._storage.network_transaction(read_only=True) as tx:
            record = await network_of_member(tx, network, origin)
            own = message.participant.rsplit("@", 1)[1] == origin
            visible = await tx.networks.network_id_if_participant(network, message.thread, message.participant)
        if not own and origin != record.host:
            raise NotAPeer(f"{origin} may speak only for its own participants")
        if visible is None:
            return  # not in the thread in this copy, or held back here: nothing to show
        self.board.set(network, message.thread, message.participant, message.state, message.ttl_s)
        if record.host == self._server:
            await self._pass_on(network, message, came_from=origin)

    async def _pass_on(self, network: str, message: ActivityMessage, *, came_from: str) -> None:
        async with self._storage.network_transaction(read_only=True) as tx:
            record = await tx.networks.find(network)
            if record is None:
                return
            if record.host == self._server:
                targets = [s for s, status in (await tx.networks.members(record.id)).items()
                           if status == "member" and s not in (self._server, came_from)]
            else:
                targets = [record.host] if came_from == self._server else []
            endpoints = {}
            for server in targets:
                peer = await tx.peers.find(server)
                if peer is not None and peer.status == "accepted" and peer.endpoint:
                    endpoints[server] = peer.endpoint
        path = f"/networks/{quote(network, safe='')}/activity"
        for server, endpoint in endpoints.items():
            task = asyncio.create_task(self._send(endpoint, server, path, message), name=f"activity:{server}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, endpoint: str, server: str, path: str, message: ActivityMessage) -> None:
        try:
            await self._client.call("POST", endpoint, server, path, message.model_dump(),
                                    timeout_s=_SEND_TIMEOUT_S, announce=False)
        except (PeerUnreachable, PeerRefused) as e:  # best effort: an indicator is not worth a retry
            log.debug("activity for %s not passed on: %s", server, e)
