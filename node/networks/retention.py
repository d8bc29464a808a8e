"""Retention: this node's own copy of a closed network keeps its history's shape, not its words.

When the node policy sets `retain_days_after_close`, every message (`message.*`) of a network
closed that long ago is replaced in this node's copy by its stub (`federation.sequencing.StubEvent`):
its id, its place in the chain and the host's signature stay, so the copy still links and
verifies end to end (`agentnet export` and `agentnet verify` show how many messages are kept
as stubs), and its head hash is unchanged; the body and the origin's signature, which cannot be
checked without the body, go. Each company applies its own retention to its own copy; what a
partner keeps is the partner's.

Runs each housekeeping round and on demand (`agentnet retention run`); each network it touches
is audited (`retention.applied`). A message a delivery still waits for is left until it is sent.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel

from federation.canonical_json import encode_canonical, parse_json
from federation.sequencing import SequencedEvent, StubEvent
from node.basics.clock import Clock
from node.federation.chain_state import STUB_TYPE
from node.federation.policy import node_policy
from storage.storage import Storage

__all__ = ["RetentionOut", "RetentionService"]

log = logging.getLogger(__name__)

_DAY_MS = 24 * 3600 * 1000
_BATCH = 500


class RetentionOut(BaseModel):
    retain_days_after_close: int | None
    networks: dict[str, int]  # network -> messages kept as stubs in this run


class RetentionService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def run(self, *, actor: str = "retention") -> RetentionOut:
        now = self._clock.now_ms()
        async with self._storage.network_transaction(read_only=True) as tx:
            days = (await node_policy(tx)).retain_days_after_close
            due = []
            if days is not None:
                for network in await tx.networks.all():
                    closed = await tx.events.of_type(network.id, "network.closed") if network.closed else []
                    if closed and _host_ts(closed[-1].wire) + days * _DAY_MS <= now:
                        due.append(network)
        done: dict[str, int] = {}
        for network in due:
            count = await self._apply(network.id, network.name, actor=actor, now=now)
            if count:
                done[network.name] = count
                log.info("retention: %d messages of %s kept as stubs", count, network.name)
        return RetentionOut(retain_days_after_close=days, networks=done)

    async def _apply(self, network_id: int, name: str, *, actor: str, now: int) -> int:
        count, after = 0, 0
        while True:
            async with self._storage.transaction() as tx:
                batch = await tx.events.messages_to_keep_as_stubs(network_id, after_row=after, limit=_BATCH)
                for stored in batch:
                    stub = StubEvent.of(SequencedEvent.from_wire(parse_json(stored.wire)))
                    await tx.events.keep_as_stub(stored.row_id, type_=STUB_TYPE, wire=encode_canonical(stub.to_wire()))
                    await tx.files.remove_for_event(stored.event_id)  # a message's files go with its body
                    await tx.message_text.remove(stored.event_id)
                if batch:
                    await tx.audit.record(actor=actor, action="retention.applied", target=name, network=name, now=now,
                                          detail={"messages": len(batch), "up_to_seq": batch[-1].seq})
            count += len(batch)
            if len(batch) < _BATCH:
                return count
            after = batch[-1].row_id


def _host_ts(wire: bytes) -> int:
    return int(parse_json(wire)["host_ts"])
