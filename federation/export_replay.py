"""Checking an export (``federation.export_file``): what a member checks of each event its host
sends (docs/protocol.md §7, §18), replayed over the whole file, with the keys it carries.

For each event from seq 1, in this order: it parses; it links to the one before (seq, network,
host, previous link hash, host time); the origin's signature verifies with the origin's key,
valid at ``origin_ts``, and the host's with the host's key, valid at ``host_ts``; pinned
companies signed with a key their pin leads to; ``origin_ts`` lies in the window around
``host_ts``; the rules allow it (``federation.rules``, the host as relay); a ``member.admitted``
vouches for no other bytes under a key id the file lists. The first failure stops the walk
and is reported with its seq; what was verified before it stays in the report. At the end the
last event must be the head the file names.

The walk is pure: the file's values in, an ``ExportReport`` out (``federation.export_report``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from federation.errors import (
    InvalidExport,
    InvalidSignature,
    ProtocolError,
    RuleViolation,
)
from federation.event_content import MemberAdmitted, MessageDeleted, MessagePosted
from federation.events import KeyLookup, SignatureCheck, verify_event
from federation.export_file import ExportDocument, ExportKey, normalize_fingerprint
from federation.export_report import ExportReport, Failure, ReportBuilder
from federation.key_documents import verify_key_document
from federation.keys import VerifyKey
from federation.rules import MessageRecord, NetworkState, apply, authorize, initial_state
from federation.sequencing import (
    SequencedEvent,
    StubEvent,
    check_chain_link,
    check_origin_ts,
    verify_sequenced,
    verify_stub,
)

__all__ = ["verify_export"]


class _Stage(Exception):
    """A failed check, with the stage that failed (``chain``, ``origin signature``...)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def _reason(error: ProtocolError) -> str:
    if isinstance(error, InvalidSignature) and error.detail:
        return f"invalid signature ({error.detail})"
    if isinstance(error, RuleViolation):
        said = str(error)
        return error.reason if said == error.reason.replace("_", " ") else f"{error.reason}: {said}"
    return str(error)


class _KeyBook:
    """The file's keys, looked up as a member's key ring would (``node.federation.key_ring``):
    by server and key id, usable up to ``usable_until``, never once revoked; and, for a pinned
    company, only the keys its pin leads to."""

    def __init__(self, keys: Mapping[str, tuple[ExportKey, ...]], trusted: Mapping[str, Mapping[str, VerifyKey]]):
        self._keys: dict[str, dict[str, ExportKey]] = {}
        for server, listed in keys.items():
            by_id: dict[str, ExportKey] = {}
            for key in listed:
                if key.key_id in by_id:
                    raise InvalidExport(f"keys: {server} lists {key.key_id} twice")
                by_id[key.key_id] = key
            self._keys[server] = by_id
        self._trusted = trusted

    def get(self, server: str, key_id: str) -> ExportKey | None:
        return self._keys.get(server, {}).get(key_id)

    def lookup(self, at_ms: int, stage: str) -> KeyLookup:
        def find(server: str, key_id: str) -> VerifyKey:
            key = self.get(server, key_id)
            if key is None:
                raise _Stage(stage, f"{server}'s key {key_id} is not in the file")
            if not key.matches_id:
                raise _Stage(stage, f"the file lists another public key under {server}'s key id {key_id} "
                                    f"(its id is {key.verify_key.key_id}): the keys block was altered")
            if key.revoked:
                raise _Stage(stage, f"{server}'s key {key_id} is revoked: it verifies nothing")
            if key.usable_until is not None and at_ms > key.usable_until:
                raise _Stage(stage, f"{server}'s key {key_id} retired at {key.usable_until}, before {at_ms}")
            trusted = self._trusted.get(server)
            if trusted is not None and trusted.get(key_id) != key.verify_key:
                raise _Stage("pin", f"signed by {server}'s key {key_id} ({key.fingerprint}), which the "
                                    f"fingerprint pinned for {server} does not lead to")
            return key.verify_key

        return find


def _pinned_keys(doc: ExportDocument, pins: Mapping[str, Sequence[str]]) -> dict[str, dict[str, VerifyKey]]:
    """For each pinned server, the keys its pins lead to: the pinned keys themselves, and every
    key listed by the server's own key document in the file if that document verifies from
    them. Raises ``_Stage("pin", ...)`` for a fingerprint no key of the server in the file has."""
    trusted: dict[str, dict[str, VerifyKey]] = {}
    for server, fingerprints in pins.items():
        candidates = {k.verify_key for k in doc.keys.get(server, ()) if k.matches_id}
        candidates |= _document_keys(doc.key_documents.get(server))
        wanted = {normalize_fingerprint(f) for f in fingerprints}
        found = {k.key_id: k for k in candidates if k.fingerprint in wanted}
        missing = wanted - {k.fingerprint for k in found.values()}
        if missing:
            raise _Stage("pin", f"no key of {server} in the file has the pinned fingerprint {sorted(missing)[0]}")
        keys = dict(found)
        document = doc.key_documents.get(server)
        if document is not None:
            try:
                verified = verify_key_document(document, server=server, pinned=found)
            except ProtocolError:
                pass  # the pinned keys alone, then
            else:
                keys.update({info.key_id: info.verify_key for info in verified.keys if not info.revoked})
        trusted[server] = keys
    return trusted


def _document_keys(document: Mapping[str, Any] | None) -> set[VerifyKey]:
    """Public keys a key document lists, read leniently (it is verified only from a pin)."""
    found: set[VerifyKey] = set()
    listed = document.get("keys") if document is not None else None
    for entry in listed if isinstance(listed, list) else []:
        try:
            found.add(VerifyKey.from_base64(entry["public_key"]))
        except (KeyError, TypeError, ProtocolError):
            continue
    return found


class _Replay:
    def __init__(self, doc: ExportDocument, book: _KeyBook, report: ReportBuilder) -> None:
        self._doc, self._book, self._report = doc, book, report
        self._previous: SequencedEvent | StubEvent | None = None
        self._state: NetworkState | None = None
        self._messages: dict[str, MessageRecord] = {}

    def step(self, seq: int, wire: Any) -> None:
        if isinstance(wire, dict) and wire.get("stub") is True:
            self._stub(seq, wire)
            return
        try:
            event = SequencedEvent.from_wire(wire)
        except ProtocolError as e:
            raise _Stage("event", _reason(e)) from e
        self._report.at(event)
        self._check(lambda: check_chain_link(self._previous, event), "chain")
        if event.seq != seq:  # unreachable after the chain check; kept as the walk's own guard
            raise _Stage("chain", f"expected seq {seq}, got {event.seq}")
        if seq == 1 and (event.network, event.host) != (self._doc.network, self._doc.host):
            raise _Stage("chain", f"the chain is {event.network} hosted by {event.host}, the file says "
                                  f"{self._doc.network} hosted by {self._doc.host}")
        self._verify_signatures(event)
        self._check(lambda: check_origin_ts(event.event, event.host_ts), "time window")
        self._apply_rules(event)
        self._previous = event
        self._report.verified(event, self._state)

    def _stub(self, seq: int, wire: Any) -> None:
        """A message kept as its place only (hidden history, retention): it must link, carry the
        host's signature, and stand where a message may; it changes no state."""
        try:
            stub = StubEvent.from_wire(wire)
        except ProtocolError as e:
            raise _Stage("event", _reason(e)) from e
        self._report.at(stub)
        self._check(lambda: check_chain_link(self._previous, stub), "chain")
        if stub.seq != seq:
            raise _Stage("chain", f"expected seq {seq}, got {stub.seq}")
        self._check(lambda: verify_stub(stub, self._book.lookup(stub.host_ts, "host signature")), "host signature")
        if stub.thread is not None:
            self._messages[stub.event_id] = MessageRecord(stub.origin, stub.thread)
        self._previous = stub
        self._report.stub_verified(stub)

    def _verify_signatures(self, event: SequencedEvent) -> None:
        """The origin's first, then the host's, so the report says which one failed."""
        signed = event.signed
        origin = self._book.lookup(event.event.origin_ts, "origin signature")
        self._check(lambda: verify_event(signed, origin), "origin signature")
        key = origin(event.event.origin, signed.signature.key_id)
        done: SignatureCheck = (key, event.event.canonical_bytes(), signed.signature.sig)
        self._check(lambda: verify_sequenced(event, lambda _server, _key_id: key, checked={done},
                                             host_lookup=self._book.lookup(event.host_ts, "host signature")),
                    "host signature")

    def _apply_rules(self, event: SequencedEvent) -> None:
        if self._state is None:
            self._state = self._check(lambda: initial_state(event.event), "rules")
            return
        state = self._state
        self._check(lambda: authorize(state, event.event, via=state.host, messages=self._messages.get), "rules")
        content = event.event.content
        if isinstance(content, MemberAdmitted):
            listed = self._book.get(content.server, content.key_id)
            if listed is not None and not listed.matches_id:
                raise _Stage("keys", f"the file lists another public key under {content.server}'s key id "
                                     f"{content.key_id}: the keys block was altered")
            if listed is not None and listed.verify_key.to_base64() != content.public_key:
                raise _Stage("keys", f"the host vouched for {content.server}'s key {content.key_id} with other "
                                     f"bytes than the file lists")
        elif isinstance(content, MessagePosted):
            self._messages[event.event_id] = MessageRecord(event.event.origin, cast(str, event.event.thread))
        elif isinstance(content, MessageDeleted):
            record = self._messages[content.event_id]  # authorize found it
            self._messages[content.event_id] = MessageRecord(record.origin, record.thread, deleted=True)
        self._state = apply(state, event.event)

    @staticmethod
    def _check(run: Any, stage: str) -> Any:
        try:
            return run()
        except ProtocolError as e:
            raise _Stage(stage, _reason(e)) from e


def verify_export(doc: ExportDocument, *, pins: Mapping[str, Sequence[str]] | None = None) -> ExportReport:
    """Check every event of ``doc`` and return what was verified; ``pins`` maps a server to the
    fingerprints (``VerifyKey.fingerprint``, any spacing or case) its signatures must come from.
    Raises ``InvalidExport`` for a keys block that lists a key id twice and ``ValueError`` for
    a pin that is not a fingerprint."""
    report = ReportBuilder(doc, pinned=frozenset(pins or ()))
    try:
        book = _KeyBook(doc.keys, _pinned_keys(doc, pins or {}))
    except _Stage as e:
        return report.build(Failure(None, e.stage, e.reason))
    replay = _Replay(doc, book, report)
    for seq, wire in enumerate(doc.events, start=1):
        try:
            replay.step(seq, wire)
        except _Stage as e:
            return report.build(Failure(seq, e.stage, e.reason))
    return report.build(_head_problem(doc, report.last))


def _head_problem(doc: ExportDocument, last: SequencedEvent | StubEvent | None) -> Failure | None:
    count = 0 if last is None else last.seq
    if count != doc.head_seq:
        where = min(count, doc.head_seq) + 1
        return Failure(where, "head", f"the file's head is seq {doc.head_seq}, but its events end at seq {count}")
    if last is not None and last.link_hash != doc.head_link_hash:
        return Failure(count, "head", f"the file's head link hash is not that of seq {count}")
    return None
