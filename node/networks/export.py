"""Exporting a network: its sequenced history as this node holds it, with every key needed to
check it offline (`federation.export_file` describes the file and what it proves).

The keys are those this node itself verifies the events with (`node.federation.key_ring`): for
each company that signed in the network, its own keys as this node learned them from it (or
this node's own keys), and the keys the network's host vouched for it in this network, less
any disputed one. Past keys are included with the moment after which they verify nothing
(`usable_until`), revoked ones marked so, and each company's key document if this node holds
one, so a reader who pins an old fingerprint can follow the company's rotations.

Pending events (this node's own, not sequenced yet) are not part of the shared history and are
left out. Every export is audited (`network.export`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from federation.canonical_json import parse_json
from federation.export_file import EXPORT_FORMAT, MAX_EXPORT_EVENTS
from federation.keys import VerifyKey, b64encode
from node.basics.clock import Clock
from node.basics.errors import PayloadTooLarge
from node.federation.key_publishing import own_key_document
from node.federation.key_ring import KeyRing, usable_until
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkStore, NetworkTransaction

__all__ = ["ExportHead", "ExportKeyOut", "ExportOut", "NetworkExporter"]

# Events read per query: a page of sequenced wire forms stays a few hundred KiB.
_PAGE = 1000


class ExportHead(BaseModel):
    seq: int
    link_hash: str | None


class ExportKeyOut(BaseModel):
    key_id: str
    public_key: str
    valid_until: int | None
    usable_until: int | None
    revoked: bool
    source: str  # own, peer (learned from the company itself), vouched (by the host, in this network)


class ExportOut(BaseModel):
    """The export file (`docs/protocol.md`, appendix); `agentnet verify FILE` checks it offline."""

    format: str
    network: str
    title: str
    host: str
    exported_by: str
    exported_at: int
    head: ExportHead
    keys: dict[str, list[ExportKeyOut]]
    key_documents: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]


class NetworkExporter:
    def __init__(self, storage: NetworkStore, keys: KeyRing, clock: Clock) -> None:
        self._storage = storage
        self._keys = keys
        self._clock = clock

    async def export(self, name: str, *, actor: str) -> ExportOut:
        now = self._clock.now_ms()
        async with self._storage.network_transaction(read_only=True) as tx:
            network = await tx.networks.get(name)
            if network.head_seq > MAX_EXPORT_EVENTS:
                raise PayloadTooLarge(f"{name} holds {network.head_seq} events; an export holds at most "
                                      f"{MAX_EXPORT_EVENTS}")
            events = await self._events(tx, network)
            # A stub (hidden history, retention) is signed by the host alone.
            signers = {network.host, *(e["event"]["origin"] for e in events if not e.get("stub"))}
            keys = {server: await self._server_keys(tx, network, server) for server in sorted(signers)}
            documents = {server: doc for server in sorted(signers)
                         if (doc := await self._document(tx, server, now)) is not None}
        async with self._storage.network_transaction() as tx:
            await tx.audit.record(actor=actor, action="network.export", target=name, now=now, network=name,
                                  detail={"head_seq": network.head_seq, "events": len(events)})
        return ExportOut(
            format=EXPORT_FORMAT, network=network.name, title=network.title, host=network.host,
            exported_by=self._keys.server_name, exported_at=now,
            head=ExportHead(seq=network.head_seq,
                            link_hash=None if network.head_hash is None else b64encode(network.head_hash)),
            keys=keys, key_documents=documents, events=events,
        )

    @staticmethod
    async def _events(tx: NetworkTransaction, network: NetworkRecord) -> list[dict[str, Any]]:
        """Sequenced wire forms from seq 1 to the head, as stored (this node's own bytes)."""
        events: list[dict[str, Any]] = []
        while len(events) < network.head_seq:
            page = await tx.events.after(network.id, len(events), limit=_PAGE)
            if not page:
                break
            events.extend(parse_json(stored.wire) for stored in page if stored.seq is not None)
        return events[:network.head_seq]

    async def _server_keys(self, tx: NetworkTransaction, network: NetworkRecord, server: str) -> list[ExportKeyOut]:
        found: dict[str, ExportKeyOut] = {}
        if server == self._keys.server_name:
            current = self._keys.signing_key.verify_key
            for record in await tx.node_keys.all():
                own_until = None if record.key_id == current.key_id else record.valid_until
                found[record.key_id] = _key(record.key_id, record.public_key, own_until, record.revoked_at, "own")
            found[current.key_id] = _key(current.key_id, current.raw, None, None, "own")
        else:
            for key in await tx.peers.keys(server):
                found[key.key_id] = _key(key.key_id, key.public_key, key.valid_until, key.revoked_at, "peer")
            for vouched in await tx.vouched_keys.in_network(network.id, server):
                if vouched.status != "disputed" and vouched.key_id not in found:
                    found[vouched.key_id] = _key(vouched.key_id, vouched.public_key, vouched.valid_until,
                                                 vouched.revoked_at, "vouched")
        return list(found.values())

    async def _document(self, tx: NetworkTransaction, server: str, now: int) -> dict[str, Any] | None:
        """The company's own signed key document: this node's built now, a peer's as last fetched."""
        if server == self._keys.server_name:
            return await own_key_document(tx, self._keys.signing_key, server=server, now=now)
        stored = await tx.peers.key_document(server)
        return None if stored is None else parse_json(stored[0])


def _key(key_id: str, public_key: bytes, valid_until: int | None, revoked_at: int | None,
         source: str) -> ExportKeyOut:
    return ExportKeyOut(key_id=key_id, public_key=VerifyKey(public_key).to_base64(), valid_until=valid_until,
                        usable_until=usable_until(valid_until), revoked=revoked_at is not None, source=source)
