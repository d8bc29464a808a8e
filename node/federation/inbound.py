"""Applying a batch of events a peer sent (a pushed transaction or a catch-up page).

Each event is checked and stored on its own terms, and one bad event never blocks the rest.
The common case is a batch where every event is good, and for it one database transaction
holds them all: one commit per batch instead of one per event. If any event is refused in
that pass, the pass is rolled back whole and the batch is applied again one event per
transaction, with the refusals answered one by one and a key refresh allowed between them
(`KeyRefresher.retrying`). Both passes run the same checks, so the answers are the same; the
first pass is only faster.

Before either pass, the host's events that this node already holds at the same place are
answered as duplicates, those after a gap as out of order, and those of a network this node
halted (`node.federation.halting`) as `network_halted`, without being parsed: the full checks would end
the same way, at much more cost (`_sort_out`). A host's `member.admitted` whose key this node
has not learned from the company itself first sends this node to ask the company
(`KeyRefresher.confirm`), outside any database transaction.

A refusal of the host's next event halts that network here (`HaltKeeper.refused`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from federation.canonical_json import encode_canonical
from federation.errors import InvalidEncoding, InvalidIdentifier, ProtocolError, RuleViolation
from federation.events import SignatureCheck, SignedEvent
from federation.identifiers import validate_server_name
from federation.keys import b64decode
from federation.sequencing import SequencedEvent, StubEvent
from federation.signature_batches import good_signatures, signature_checks
from node.basics.errors import NetworkHalted, NodeError, OutOfOrder
from node.federation.engine import Accepted, FederationEngine
from node.federation.halting import HaltKeeper
from node.federation.key_refresh import KeyRefresher
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkStore, NetworkTransaction

__all__ = ["InboundEvents"]

log = logging.getLogger(__name__)

Parsed = SequencedEvent | SignedEvent | StubEvent

# From this many events a batch's signatures are checked on threads; below it, handing the
# work to a thread costs more than it saves (a live push is usually one event).
PARALLEL_CHECKS_FROM = 16
_THREADS = min(os.cpu_count() or 1, 4)


class _Refused(Exception):
    """Ends the one-transaction pass (and rolls it back) at the first refused event."""


class InboundEvents:
    def __init__(self, storage: NetworkStore, engine: FederationEngine, refresher: KeyRefresher, halts: HaltKeeper, *,
                 on_gap: Callable[[str], None], on_event: Callable[[str], None] = lambda result: None) -> None:
        """`on_gap(network)` hears of an event that came before its predecessor (catch up);
        `on_event` how each event settled: accepted, duplicate or refused (metrics)."""
        self._storage = storage
        self._engine = engine
        self._refresher = refresher
        self._halts = halts
        self._on_gap = on_gap
        self._on_event = on_event

    async def accept(self, wires: list[Any], *, via: str, resuming: str | None = None) -> list[dict]:
        """One result per event, in order: `{event_id, status: 200, seq?}` or a refusal.
        `resuming`: a halted network whose events are tried again (by the catch-up worker)."""
        results, _answer = await self._apply(wires, via, None, resuming)
        return results

    async def answer(self, txn_id: str, wires: list[Any], *, via: str, now: int) -> bytes:
        """The answer to transaction `txn_id` pushed by `via`, as canonical bytes: the stored
        one if it was answered before, else its events' results, stored with the events
        when they were applied together (one database transaction for the whole exchange)."""
        _results, answer = await self._apply(wires, via, (txn_id, now), None)
        assert answer is not None
        return answer

    async def _apply(self, wires: list[Any], via: str, txn: tuple[str, int] | None,
                     resuming: str | None) -> tuple[list[dict], bytes | None]:
        results: list[dict | None] = [None] * len(wires)
        todo: list[int] = []
        await self._confirm_admissions(wires, via)
        try:
            async with self._storage.network_transaction() as tx:
                if txn is not None and (held := await tx.inbound.transaction_response(via, txn[0])) is not None:
                    return [], held
                todo = await self._sort_out(tx, wires, via, results, resuming)
                accepted = await self._all_at_once(tx, [wires[i] for i in todo], via)
                for i, one in zip(todo, accepted, strict=True):
                    results[i] = _result(one)
                answer = await _save_answer(tx, via, txn, results)
        except _Refused:
            for i in todo:
                results[i] = await self._one(wires[i], via)
            async with self._storage.network_transaction() as tx:
                answer = await _save_answer(tx, via, txn, results)
        else:
            for one in accepted:  # counted once they are committed
                self._on_event("duplicate" if one.duplicate else "accepted")
        return results, answer  # type: ignore[return-value]  # every slot is filled by now

    async def _confirm_admissions(self, wires: list[Any], via: str) -> None:
        """For each `member.admitted` its host sends, make sure this node asked the admitted
        company for its keys before the host's word for them is weighed (`FederationEngine`)."""
        wanted = [(name, admitted) for wire in wires if (placed := _placement(wire)) is not None
                  and (name := placed[0]) is not None and (admitted := _admission(wire)) is not None]
        if not wanted:
            return
        async with self._storage.network_transaction() as tx:
            hosted_by_via = {name for name, _ in wanted
                             if (n := await tx.networks.find(name)) is not None and n.host == via != self._engine.server}
        for name, (server, key_id, public_key, endpoint) in wanted:
            if name in hosted_by_via:
                await self._refresher.confirm(server, key_id, public_key, endpoint)

    async def _sort_out(self, tx: NetworkTransaction, wires: list[Any], via: str,
                        results: list[dict | None], resuming: str | None) -> list[int]:
        """Answer, before parsing them, the host's events that this node already holds at the
        same place (duplicates), those past a gap (out of order) and those of a network halted
        here; return the indexes of the rest. While a member catches up, the host also pushes
        what it queued meanwhile, so the first two are common then, and parsing each costs
        more than applying it."""
        placed = {i: p for i, p in enumerate(map(_placement, wires)) if p is not None}
        networks: dict[str, NetworkRecord] = {}
        halted: dict[str, str] = {}
        for name in sorted({name for name, _seq, _id in placed.values()}):
            network = await self._engine.locked_network(tx, name)
            if network is not None and network.host == via != self._engine.server:
                networks[name] = network
                halt = await tx.halts.find(network.id) if name != resuming else None
                if halt is not None:
                    halted[name] = f"this node halted {name} at seq {halt.seq}: {halt.reason}"
        held: dict[str, dict[int, str]] = {}
        for name, network in networks.items():
            seqs = [seq for n, seq, _id in placed.values() if n == name and seq <= network.head_seq]
            if seqs:
                held[name] = await tx.events.ids_between(network.id, min(seqs), max(seqs))
        expected = {name: network.head_seq + 1 for name, network in networks.items()}
        todo = []
        for i in range(len(wires)):
            name, seq, event_id = placed.get(i) or ("", 0, "")  # "": no network is named so
            if name not in networks:
                todo.append(i)
            elif seq < expected[name] and held.get(name, {}).get(seq) == event_id:
                self._on_event("duplicate")
                results[i] = _result(Accepted(event_id, seq, duplicate=True))
            elif name in halted:
                self._on_event("refused")
                stop = NetworkHalted(halted[name])
                results[i] = _refusal(event_id, stop.status, stop.code, stop.message)
            elif seq > expected[name]:
                self._on_gap(name)
                self._on_event("refused")
                gap = OutOfOrder(f"expected seq {expected[name]} of {name}, got {seq}")
                results[i] = _refusal(event_id, gap.status, gap.code, gap.message)
            else:  # the next one, or one that differs from what is held there: the checks say which
                expected[name] += seq == expected[name]
                todo.append(i)
        return todo

    async def _all_at_once(self, tx: NetworkTransaction, wires: list[Any], via: str) -> list[Accepted]:
        try:
            events = [_parse(wire) for wire in wires]
            checked = await self._check_signatures(tx, events) if len(events) >= PARALLEL_CHECKS_FROM else set()
            return [await self._accept(tx, event, via, checked) for event in events]
        except (ProtocolError, NodeError) as e:
            raise _Refused from e

    async def _check_signatures(self, tx: NetworkTransaction, events: list[Parsed]) -> set[SignatureCheck]:
        """Run a batch's signature checks on one thread per CPU (libsodium releases the GIL):
        they are a fifth of a catch-up's work. The ones that pass are not run again as each
        event is applied; any other, and any signer whose key is not pinned yet (a member
        admitted earlier in the batch), is checked there, in order, as usual."""
        checks: list[SignatureCheck] = []
        for event in events:
            if isinstance(event, StubEvent):  # one host signature: checked as it is applied
                continue
            network = await self._engine.locked_network(tx, event.event.network)
            if network is not None:
                checks += signature_checks(event, *await self._engine.keys.event_lookups(tx, network.id, event))
        if _THREADS < 2:
            return good_signatures(checks)
        parts = await asyncio.gather(*(asyncio.to_thread(good_signatures, checks[i::_THREADS])
                                       for i in range(_THREADS)))
        return set().union(*parts)

    async def _accept(self, tx: NetworkTransaction, event: Parsed, via: str,
                      checked: set[SignatureCheck] | frozenset[SignatureCheck] = frozenset()) -> Accepted:
        if isinstance(event, StubEvent):
            return await self._engine.accept_stub(tx, event, via=via)
        if isinstance(event, SequencedEvent):
            return await self._engine.accept_sequenced(tx, event, via=via, checked=checked)
        return await self._engine.accept_submission(tx, event, via=via, checked=checked)

    async def _one(self, wire: Any, via: str) -> dict:
        event_id = None
        event: Parsed | None = None
        try:
            event = _parse(wire)
            event_id = event.event_id

            async def attempt() -> Accepted:
                async with self._storage.network_transaction() as tx:
                    return await self._accept(tx, event, via)

            # The author, or the host of a sequenced event, may have rotated its key.
            accepted = await self._refresher.retrying(_signers(event), _network_of(event), attempt)
        except OutOfOrder as e:
            assert event is not None  # only accept_sequenced finds a gap
            self._on_gap(_network_of(event))
            self._on_event("refused")
            return _refusal(event_id, e.status, e.code, e.message)
        except (ProtocolError, NodeError) as e:
            log.info("refused event %s from %s: %s %s", event_id, via, e.code, e.message)
            self._on_event("refused")
            placement = _placement(wire)
            if isinstance(event, SequencedEvent | StubEvent):  # parsed: its placement is known for sure
                placement = (event.network, event.seq, event.event_id)
            await self._halts.refused(placement, e, via)
            refusal = _refusal(event_id, e.status, e.code, e.message)
            if isinstance(e, RuleViolation):
                refusal["reason"] = e.reason
            return refusal
        self._on_event("duplicate" if accepted.duplicate else "accepted")
        return _result(accepted)


def _parse(wire: Any) -> Parsed:
    """A sequenced event or a stub (from the host), or a signed one (a member's submission to
    us as host)."""
    if isinstance(wire, dict) and wire.get("stub") is True:
        return StubEvent.from_wire(wire)
    if isinstance(wire, dict) and "seq" in wire:
        return SequencedEvent.from_wire(wire)
    return SignedEvent.from_wire(wire)


def _network_of(event: Parsed) -> str:
    return event.network if isinstance(event, StubEvent) else event.event.network


def _signers(event: Parsed) -> list[str]:
    """Whose keys verify `event`: its author's node, and for a sequenced event (or a stub:
    only) its host."""
    if isinstance(event, StubEvent):
        return [event.host]
    signers = [event.event.origin] + ([event.host] if isinstance(event, SequencedEvent) else [])
    return list(dict.fromkeys(signers))


async def _save_answer(tx: NetworkTransaction, via: str, txn: tuple[str, int] | None,
                       results: list[dict | None]) -> bytes | None:
    if txn is None:
        return None
    answer = encode_canonical({"results": results})
    await tx.inbound.save_transaction_response(via, txn[0], answer, now=txn[1])
    return answer


def _placement(wire: Any) -> tuple[str, int, str] | None:
    """(network, seq, event id) as a sequenced event states them, unchecked; None if it does not."""
    if not isinstance(wire, dict):
        return None
    if wire.get("stub") is True:
        seq, event_id, network = wire.get("seq"), wire.get("event_id"), wire.get("network")
        ok = type(seq) is int and isinstance(event_id, str) and isinstance(network, str)
        return (network, seq, event_id) if ok else None  # type: ignore[return-value]  # checked just above
    seq, content_hash, event = wire.get("seq"), wire.get("hash"), wire.get("event")
    if type(seq) is not int or not isinstance(content_hash, str) or not isinstance(event, dict):
        return None
    network = event.get("network")
    return (network, seq, "$" + content_hash) if isinstance(network, str) else None


def _admission(wire: Any) -> tuple[str, str, bytes, str | None] | None:
    """(server, key id, public key, endpoint) of a `member.admitted`, unchecked but typed;
    None for anything else. The event is parsed and checked in full later."""
    event = wire.get("event") if isinstance(wire, dict) else None
    content = event.get("content") if isinstance(event, dict) and event.get("type") == "member.admitted" else None
    if not isinstance(content, dict):
        return None
    server, key_id, public_key, endpoint = (content.get(k) for k in ("server", "key_id", "public_key", "endpoint"))
    if not (isinstance(server, str) and isinstance(key_id, str) and isinstance(public_key, str)):
        return None
    if max(len(server), len(key_id), len(public_key)) > 600:
        return None
    if endpoint is not None and not (isinstance(endpoint, str) and endpoint.startswith("https://")
                                     and len(endpoint) <= 509):
        return None
    try:
        return validate_server_name(server), key_id, b64decode(public_key), endpoint
    except (InvalidEncoding, InvalidIdentifier):
        return None


def _result(accepted: Accepted) -> dict:
    result: dict = {"event_id": accepted.event_id, "status": 200}
    if accepted.seq is not None:
        result["seq"] = accepted.seq
    return result


def _refusal(event_id: str | None, status: int, code: str, message: str) -> dict:
    result = {"status": status, "code": code, "message": message[:300]}
    if event_id is not None:
        result["event_id"] = event_id
    return result
