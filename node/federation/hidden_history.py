"""What a host sends a member of a network that hides earlier history from later members
(`history_visible_to_new_members: false`, set at creation and shown with every invite).

Messages (`message.*`) sequenced before the member's latest admission go as stubs
(`federation.sequencing.StubEvent`): their id, place and the host's signature, so the member's
copy still links and verifies end to end, without a word of what was said. Every lifecycle
event (admissions, attachments, threads opened and closed) goes in full: the member needs them
to check the rules on what follows, and they say who took part, not what was said.
"""

from __future__ import annotations

from collections.abc import Sequence

from federation.canonical_json import encode_canonical, parse_json
from federation.sequencing import SequencedEvent, StubEvent
from node.federation.chain_state import stored_content
from storage.network.events import StoredEvent
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkTransaction

__all__ = ["admitted_at", "wires_for"]


async def admitted_at(tx: NetworkTransaction, network: NetworkRecord, server: str) -> int:
    """The seq of `server`'s latest admission to `network` (0: never admitted; the host: 0)."""
    if server == network.host:
        return 0
    seqs = [e.seq for e in await tx.events.of_type(network.id, "member.admitted")
            if e.seq is not None and stored_content(e.wire).get("server") == server]
    return max(seqs, default=0)


async def wires_for(tx: NetworkTransaction, network: NetworkRecord, events: Sequence[StoredEvent],
                    member: str) -> list[bytes]:
    """The stored wire forms of `events` as `member` may receive them."""
    if network.history_visible or not events:
        return [e.wire for e in events]
    joined = await admitted_at(tx, network, member)
    wires = []
    for stored in events:
        assert stored.seq is not None
        if stored.seq < joined and stored.type.startswith("message."):
            placed = SequencedEvent.from_wire(parse_json(stored.wire))
            wires.append(encode_canonical(StubEvent.of(placed).to_wire()))
        else:
            wires.append(stored.wire)
    return wires
