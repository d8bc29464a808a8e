"""Where the host puts an event: its place in the network's hash chain.

- The host signs ``{event_id, host, network, prev, seq, ts}``. ``prev`` is the *link hash* of
  the previous sequenced event (the hash of that signed body), not just its content hash, so
  every link commits to the entire history before it and a rewritten or forked history shows
  up at the first differing link.
- ``ts`` is the host's clock when it sequenced the event. It never goes back along a chain,
  and it is what clients are shown beside the origin's own ``origin_ts``: the origin's clock
  is only the origin's word, the host's time is the network's order.
- An event's ``origin_ts`` must lie within a window of the host's ``ts``
  (``check_origin_ts``): the host refuses to sequence anything else, and members check the
  same when they replay the chain, so an origin cannot date a message in 1970 or in 2255.
- Verifying a sequenced event takes two lookups: the origin's key may come from the host's
  word (a key it vouched for in this network), the host's key never does
  (``verify_sequenced``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from federation.canonical_json import MAX_INT, encode_canonical
from federation.errors import ChainError, InvalidEvent, RuleViolation
from federation.events import (
    _B64_HASH,
    _HASH_BYTES,
    Event,
    KeyLookup,
    Signature,
    SignatureCheck,
    SignedEvent,
    _decode,
    _lookup,
    _optional_thread,
    _SignatureWire,
    _SignedEventWire,
    _validate,
    _verify,
    verify_event,
)
from federation.identifiers import validate_network_name, validate_server_name
from federation.keys import SigningKey, b64encode

__all__ = [
    "FIRST_SEQ",
    "MAX_ORIGIN_AGE_MS",
    "MAX_ORIGIN_LEAD_MS",
    "ChainHead",
    "SequencedEvent",
    "StubEvent",
    "check_chain_link",
    "check_origin_ts",
    "sequence_event",
    "verify_sequenced",
    "verify_stub",
]

FIRST_SEQ = 1
# An hour ahead of the host's clock. The window bounds absurd dates, it does not police clocks
# (signed requests do that, within 5 minutes): a node whose clock ran ahead cannot talk to its
# host until it is fixed, and what its people posted meanwhile, dated by the wrong clock, must
# still go through then.
MAX_ORIGIN_LEAD_MS = 60 * 60 * 1000
# A member keeps what its people post while the host is down and submits it when the host is
# back; seven days of outage is the longest this tolerates before such posts are refused.
MAX_ORIGIN_AGE_MS = 7 * 24 * 3600 * 1000


class _SequencedEventWire(_SignedEventWire):
    seq: Annotated[int, Field(ge=FIRST_SEQ, le=MAX_INT)]
    prev: _B64_HASH | None
    host: Annotated[str, PlainValidator(validate_server_name)]
    host_ts: Annotated[int, Field(ge=0, le=MAX_INT)]
    host_signature: _SignatureWire


@dataclass(frozen=True, slots=True)
class ChainHead:
    """What a node keeps of the last event of its copy: enough to check the next link."""

    network: str
    host: str
    seq: int
    link_hash: bytes
    host_ts: int


@dataclass(frozen=True, slots=True)
class SequencedEvent:
    """A signed event placed at ``seq`` in its network's hash chain by the host."""

    signed: SignedEvent
    seq: int
    prev: bytes | None
    host: str
    host_ts: int
    host_signature: Signature
    _sequence: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_server_name(self.host)
        if type(self.seq) is not int or not FIRST_SEQ <= self.seq <= MAX_INT:
            raise InvalidEvent(f"seq must be an integer in [{FIRST_SEQ}, {MAX_INT}]")
        if type(self.host_ts) is not int or not 0 <= self.host_ts <= MAX_INT:
            raise InvalidEvent(f"host_ts must be an integer in [0, {MAX_INT}]")
        if (self.seq == FIRST_SEQ) != (self.prev is None):
            raise InvalidEvent(f"exactly the event at seq {FIRST_SEQ} has no previous hash")
        if self.prev is not None and len(self.prev) != _HASH_BYTES:
            raise InvalidEvent(f"previous hash must be {_HASH_BYTES} bytes")

    @property
    def event(self) -> Event:
        return self.signed.event

    @property
    def event_id(self) -> str:
        return self.signed.event_id

    @property
    def network(self) -> str:
        return self.signed.event.network

    def sequence_bytes(self) -> bytes:
        """The canonical bytes the host signs (and the link hash is taken of)."""
        if self._sequence is None:
            data = _sequence_bytes(self.event_id, self.host, self.network, self.prev, self.seq, self.host_ts)
            object.__setattr__(self, "_sequence", data)
        return self._sequence  # type: ignore[return-value]  # set just above

    @property
    def link_hash(self) -> bytes:
        """What the next event's ``prev`` must equal."""
        return hashlib.sha256(self.sequence_bytes()).digest()

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.network, self.host, self.seq, self.link_hash, self.host_ts)

    def to_wire(self) -> dict[str, Any]:
        return {
            **self.signed.to_wire(),
            "seq": self.seq,
            "prev": None if self.prev is None else b64encode(self.prev),
            "host": self.host,
            "host_ts": self.host_ts,
            "host_signature": self.host_signature.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: Any) -> SequencedEvent:
        wire = _validate(_SequencedEventWire, data)
        prev = None if wire.prev is None else _decode(wire.prev)
        signed = SignedEvent._from_model(wire)
        host_signature = Signature._from_model(wire.host_signature)
        return cls(signed, wire.seq, prev, wire.host, wire.host_ts, host_signature)


class _StubWire(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    stub: Literal[True]
    event_id: Annotated[str, Field(pattern=r"^\$[A-Za-z0-9_-]{43}$")]
    network: Annotated[str, PlainValidator(validate_network_name)]
    thread: Annotated[str | None, PlainValidator(_optional_thread)]
    origin: Annotated[str, PlainValidator(validate_server_name)]
    seq: Annotated[int, Field(ge=FIRST_SEQ + 1, le=MAX_INT)]
    prev: _B64_HASH
    host: Annotated[str, PlainValidator(validate_server_name)]
    host_ts: Annotated[int, Field(ge=0, le=MAX_INT)]
    host_signature: _SignatureWire


@dataclass(frozen=True, slots=True)
class StubEvent:
    """An event's place in the chain without the event: what a receiver keeps, or is sent,
    where it may not see the content (a network that hides history from later members, a body
    removed by retention). The host's signature covers ``{event_id, host, network, prev, seq,
    ts}``, so a stub still verifies and still links the chain; the origin's signature needs the
    content and cannot be checked. ``thread`` and ``origin`` are the host's word, kept so that
    a later reply or edit can name the hidden message."""

    event_id: str
    network: str
    thread: str | None
    origin: str
    seq: int
    prev: bytes
    host: str
    host_ts: int
    host_signature: Signature

    def sequence_bytes(self) -> bytes:
        return _sequence_bytes(self.event_id, self.host, self.network, self.prev, self.seq, self.host_ts)

    @property
    def link_hash(self) -> bytes:
        return hashlib.sha256(self.sequence_bytes()).digest()

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.network, self.host, self.seq, self.link_hash, self.host_ts)

    def to_wire(self) -> dict[str, Any]:
        return {
            "stub": True, "event_id": self.event_id, "network": self.network, "thread": self.thread,
            "origin": self.origin, "seq": self.seq, "prev": b64encode(self.prev), "host": self.host,
            "host_ts": self.host_ts, "host_signature": self.host_signature.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: Any) -> StubEvent:
        wire = _validate(_StubWire, data)
        return cls(wire.event_id, wire.network, wire.thread, wire.origin, wire.seq, _decode(wire.prev), wire.host,
                   wire.host_ts, Signature._from_model(wire.host_signature))

    @classmethod
    def of(cls, placed: SequencedEvent) -> StubEvent:
        """The stub of a sequenced event (never of the first: the chain starts with a visible one)."""
        if placed.prev is None:
            raise InvalidEvent(f"the event at seq {FIRST_SEQ} cannot be a stub")
        return cls(placed.event_id, placed.network, placed.event.thread, placed.event.origin, placed.seq,
                   placed.prev, placed.host, placed.host_ts, placed.host_signature)


def verify_stub(stub: StubEvent, host_lookup: KeyLookup, *, checked: Container[SignatureCheck] = ()) -> None:
    """Check the host's signature over the stub's place (keys from ``host_lookup``)."""
    sig = stub.host_signature
    _verify((_lookup(host_lookup, stub.host, sig.key_id), stub.sequence_bytes(), sig.sig), checked)


def _sequence_bytes(eid: str, host: str, network: str, prev: bytes | None, seq: int, ts: int) -> bytes:
    return encode_canonical(
        {
            "event_id": eid,
            "host": host,
            "network": network,
            "prev": None if prev is None else b64encode(prev),
            "seq": seq,
            "ts": ts,
        }
    )


def sequence_event(
    signed: SignedEvent, *, seq: int, prev_hash: bytes | None, host: str, host_ts: int, host_key: SigningKey
) -> SequencedEvent:
    """Place ``signed`` at ``seq`` at the host's time ``host_ts``; ``prev_hash`` is the
    previous event's ``link_hash``."""
    body = _sequence_bytes(signed.event_id, host, signed.event.network, prev_hash, seq, host_ts)
    signature = Signature(host_key.key_id, host_key.sign(body))
    return SequencedEvent(signed, seq, prev_hash, host, host_ts, signature)


def verify_sequenced(seq_event: SequencedEvent, lookup: KeyLookup, *, host_lookup: KeyLookup | None = None,
                     checked: Container[SignatureCheck] = ()) -> None:
    """Check the origin's signature (keys from ``lookup``) and the host's (keys from
    ``host_lookup``, by default ``lookup``); whether ``host`` really hosts the network is the
    caller's to check against its state."""
    verify_event(seq_event.signed, lookup, checked=checked)
    sig = seq_event.host_signature
    key = _lookup(host_lookup or lookup, seq_event.host, sig.key_id)
    _verify((key, seq_event.sequence_bytes(), sig.sig), checked)


def check_chain_link(previous: ChainHead | SequencedEvent | StubEvent | None,
                     nxt: SequencedEvent | StubEvent) -> None:
    """Raise ``ChainError`` unless ``nxt`` directly follows ``previous`` (``None``: the start)."""
    if previous is None:
        if isinstance(nxt, StubEvent) or nxt.seq != FIRST_SEQ or nxt.prev is not None:
            raise ChainError(f"history must start at seq {FIRST_SEQ} with no previous hash")
        if nxt.event.type != "network.created" or nxt.host != nxt.event.origin:
            raise ChainError("history must start with network.created, sequenced by its origin")
        return
    head = previous if isinstance(previous, ChainHead) else previous.head
    if nxt.network != head.network or nxt.host != head.host:
        raise ChainError("event belongs to another network or host")
    if nxt.seq != head.seq + 1:
        raise ChainError(f"expected seq {head.seq + 1}, got {nxt.seq}")
    if nxt.prev != head.link_hash:
        raise ChainError(f"previous hash at seq {nxt.seq} does not match seq {head.seq}")
    if nxt.host_ts < head.host_ts:
        raise ChainError(f"the host's time goes back at seq {nxt.seq}")


def check_origin_ts(event: Event, host_ts: int) -> None:
    """Raise ``RuleViolation`` (``origin_ts_out_of_range``) unless the origin dated ``event``
    within the window around the host's time."""
    if event.origin_ts > host_ts + MAX_ORIGIN_LEAD_MS:
        raise RuleViolation("origin_ts_out_of_range",
                            f"origin_ts is {event.origin_ts - host_ts} ms ahead of the host's clock "
                            f"(at most {MAX_ORIGIN_LEAD_MS} allowed): check the origin's clock")
    if event.origin_ts < host_ts - MAX_ORIGIN_AGE_MS:
        raise RuleViolation("origin_ts_out_of_range",
                            f"origin_ts is {host_ts - event.origin_ts} ms behind the host's clock "
                            f"(at most {MAX_ORIGIN_AGE_MS} allowed)")
