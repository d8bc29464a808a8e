"""What checking an export found (``federation.export_replay``), as plain values: whether it
verified (or the first seq that did not, and why), each company with its keys' fingerprints
and what it signed, the shared threads, and who said what in them.

Only verified events reach the report, so a transcript built from it (``node.ops.transcript``)
holds nothing the chain does not prove. Text in it comes from other companies: whoever prints
it must escape it for where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

from federation.event_content import (
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    ParticipantAttached,
    ThreadJoined,
    ThreadOpened,
)
from federation.export_file import ExportDocument
from federation.rules import NetworkState
from federation.sequencing import SequencedEvent, StubEvent

__all__ = ["CompanyKey", "CompanyReport", "ExportReport", "Failure", "ReportBuilder", "Said", "ThreadRecord"]

_MESSAGE_KINDS = {"message.posted": "posted", "message.edited": "edited", "message.deleted": "deleted"}


@dataclass(frozen=True, slots=True)
class Failure:
    """The first check that failed: at ``seq`` (``None``: before any event, e.g. a pin), in
    ``stage`` (``event``, ``chain``, ``origin signature``, ``host signature``, ``pin``, ``time
    window``, ``rules``, ``keys``, ``head``)."""

    seq: int | None
    stage: str
    reason: str


@dataclass(frozen=True, slots=True)
class CompanyKey:
    key_id: str
    fingerprint: str
    source: str  # how the exporting node learned it: own, peer (from the company), vouched (by a host)
    signed: int  # signatures it made in the verified part: origin and host alike
    usable_until: int | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class CompanyReport:
    server: str
    role: str  # host, member, left, removed, or "-" (listed, never a member)
    events: int  # events it signed as origin
    messages: int  # of which messages posted
    keys: tuple[CompanyKey, ...]
    pinned: bool


@dataclass(frozen=True, slots=True)
class Said:
    """One message event of a thread: a post, an edit (``refers_to`` the post) or a delete."""

    seq: int
    event_id: str
    thread: str
    kind: str  # posted, edited, deleted
    sender: str
    company: str
    origin_ts: int
    host_ts: int
    body: str | None
    refers_to: str | None


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    name: str
    title: str
    participants: tuple[str, ...]
    opened_by: str
    opened_seq: int
    closed_seq: int | None


@dataclass(frozen=True, slots=True)
class ExportReport:
    network: str
    title: str
    host: str
    exported_by: str
    exported_at: int
    head_seq: int  # as the file says
    verified_seq: int  # the last event that verified (0: none)
    failure: Failure | None
    failed_event: str | None  # "type by sender" of the event that failed, when it parsed
    companies: tuple[CompanyReport, ...]
    threads: tuple[ThreadRecord, ...]
    said: tuple[Said, ...]
    names: dict[str, str]  # participant id -> display name, as attached
    stubs: int = 0  # messages kept as their place only (hidden history, retention)

    @property
    def ok(self) -> bool:
        return self.failure is None


class ReportBuilder:
    """Collects as the replay goes: ``at`` for each event parsed, ``verified`` for each that
    passed every check, ``build`` once at the end."""

    def __init__(self, doc: ExportDocument, *, pinned: frozenset[str]) -> None:
        self._doc, self._pinned = doc, pinned
        self.last: SequencedEvent | StubEvent | None = None
        self._current: SequencedEvent | None = None
        self.stubs = 0
        self._state: NetworkState | None = None
        self._events: dict[str, int] = {}
        self._messages: dict[str, int] = {}
        self._signed: dict[tuple[str, str], int] = {}
        self._threads: dict[str, ThreadRecord] = {}
        self._said: list[Said] = []
        self._names: dict[str, str] = {}

    def at(self, event: SequencedEvent | StubEvent) -> None:
        self._current = event if isinstance(event, SequencedEvent) else None

    def stub_verified(self, stub: StubEvent) -> None:
        """A message the exporting node may not see (hidden history) or no longer keeps
        (retention): its place and the host's signature verified; what it said cannot be."""
        self.last, self._current = stub, None
        self._signed[(stub.host, stub.host_signature.key_id)] = self._signed.get(
            (stub.host, stub.host_signature.key_id), 0) + 1
        self.stubs += 1

    def verified(self, event: SequencedEvent, state: NetworkState | None) -> None:
        self.last, self._current, self._state = event, None, state
        ev = event.event
        self._events[ev.origin] = self._events.get(ev.origin, 0) + 1
        for signer in ((ev.origin, event.signed.signature.key_id), (event.host, event.host_signature.key_id)):
            self._signed[signer] = self._signed.get(signer, 0) + 1
        content = ev.content
        if isinstance(content, ParticipantAttached):
            self._names[str(content.participant)] = content.display_name
        elif isinstance(content, ThreadOpened):
            self._threads[cast(str, ev.thread)] = ThreadRecord(
                cast(str, ev.thread), content.title, tuple(str(p) for p in content.participants), str(ev.sender),
                event.seq, None)
        elif isinstance(content, ThreadJoined):
            name = cast(str, ev.thread)
            opened = self._threads[name]  # the rules refuse joining a thread that was never opened
            self._threads[name] = replace(opened, participants=(*opened.participants,
                                                                *(str(p) for p in content.participants)))
        elif ev.type == "thread.closed":
            name = cast(str, ev.thread)
            opened = self._threads[name]  # the rules refuse closing a thread that was never opened
            self._threads[name] = ThreadRecord(opened.name, opened.title, opened.participants, opened.opened_by,
                                               opened.opened_seq, event.seq)
        elif isinstance(content, (MessagePosted, MessageEdited, MessageDeleted)):
            if isinstance(content, MessagePosted):
                self._messages[ev.origin] = self._messages.get(ev.origin, 0) + 1
            body = None if isinstance(content, MessageDeleted) else content.body
            refers = content.reply_to if isinstance(content, MessagePosted) else content.event_id
            self._said.append(Said(event.seq, event.event_id, cast(str, ev.thread), _MESSAGE_KINDS[ev.type],
                                   str(ev.sender), ev.origin, ev.origin_ts, event.host_ts, body, refers))

    def build(self, failure: Failure | None) -> ExportReport:
        failed = self._current
        return ExportReport(
            network=self._doc.network, title=self._doc.title, host=self._doc.host,
            exported_by=self._doc.exported_by, exported_at=self._doc.exported_at, head_seq=self._doc.head_seq,
            verified_seq=0 if self.last is None else self.last.seq, failure=failure,
            failed_event=None if failed is None or failure is None else f"{failed.event.type} by {failed.event.sender}",
            companies=self._companies(), threads=tuple(self._threads.values()), said=tuple(self._said),
            names=dict(self._names), stubs=self.stubs,
        )

    def _companies(self) -> tuple[CompanyReport, ...]:
        members = {} if self._state is None else dict(self._state.members)
        servers = sorted({*members, *self._doc.keys, *self._events}, key=lambda s: (s != self._doc.host, s))
        companies = []
        for server in servers:
            role = "host" if server == self._doc.host else members.get(server, "-")
            keys = tuple(CompanyKey(k.key_id, k.fingerprint, k.source, self._signed.get((server, k.key_id), 0),
                                    k.usable_until, k.revoked) for k in self._doc.keys.get(server, ()))
            companies.append(CompanyReport(server, role, self._events.get(server, 0), self._messages.get(server, 0),
                                           keys, server in self._pinned))
        return tuple(companies)
