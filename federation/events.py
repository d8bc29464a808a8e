"""Events: what a company said (signed by its node) and where the host put it (sequenced).

- The origin node signs the canonical bytes of the unsigned event; their SHA-256 is the
  content hash and names the event (``$`` + base64url). Nobody, the host included, can alter
  what another company's participant said without breaking that signature.
- The host signs ``{event_id, host, network, prev, seq}``. ``prev`` is the *link hash* of the
  previous sequenced event (the hash of that signed body), not just its content hash, so
  every link commits to the entire history before it and a rewritten or forked history
  shows up at the first differing link.
- ``from_wire`` re-encodes what it parsed and requires the same canonical bytes as received,
  so the hash computed here is the hash the sender signed: one wire form per event.
- Two identical posts by one sender in the same millisecond are one event (same id); a node
  that wants both keeps ``origin_ts`` strictly increasing per sender.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from federation.canonical_json import MAX_INT, encode_canonical, encodes_to
from federation.errors import (
    ChainError,
    InvalidEncoding,
    InvalidEvent,
    InvalidIdentifier,
    InvalidSignature,
    UnknownKey,
)
from federation.event_content import CONTENT_TYPES, Content
from federation.identifiers import (
    ParticipantId,
    validate_network_name,
    validate_server_name,
    validate_thread_name,
)
from federation.keys import SigningKey, VerifyKey, b64decode, b64encode

__all__ = [
    "FIRST_SEQ",
    "MAX_EVENT_BYTES",
    "Event",
    "KeyLookup",
    "SequencedEvent",
    "Signature",
    "SignatureCheck",
    "SignedEvent",
    "check_chain_link",
    "content_hash",
    "event_id",
    "sequence_event",
    "sign_event",
    "verify_event",
    "verify_sequenced",
]

# 64 KiB of canonical bytes per unsigned event: four maximal 16 Ki-character bodies' worth,
# and small enough that a batch of events stays a modest HTTP body.
MAX_EVENT_BYTES = 64 * 1024
FIRST_SEQ = 1
_HASH_BYTES = 32  # SHA-256

KeyLookup = Callable[[str, str], VerifyKey]
"""``(server, key_id) -> VerifyKey`` over pinned keys; raises ``UnknownKey`` if none."""

SignatureCheck = tuple[VerifyKey, bytes, bytes]
"""(key, signed bytes, signature): one ed25519 check, as a value a batch can run elsewhere."""

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)
# 43 = unpadded base64url of 32 bytes; 86 = of 64 bytes (an ed25519 signature).
_B64_HASH = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
_B64_SIG = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")]


def _optional_thread(value: Any) -> str | None:
    return None if value is None else validate_thread_name(value)


class _EventWire(BaseModel):
    model_config = _STRICT
    type: Annotated[str, Field(max_length=64)]
    network: Annotated[str, PlainValidator(validate_network_name)]
    thread: Annotated[str | None, PlainValidator(_optional_thread)]
    sender: Annotated[str, Field(max_length=400)]  # kind + 64 + "@" + 255 + ":" + port
    origin: Annotated[str, PlainValidator(validate_server_name)]
    origin_ts: Annotated[int, Field(ge=0, le=MAX_INT)]
    content: dict[str, Any]


class _SignatureWire(BaseModel):
    model_config = _STRICT
    key_id: Annotated[str, Field(pattern=r"^ed25519:[A-Za-z0-9_-]{8}$")]
    sig: _B64_SIG


class _SignedEventWire(BaseModel):
    model_config = _STRICT
    event: dict[str, Any]
    hash: _B64_HASH
    signature: _SignatureWire


class _SequencedEventWire(_SignedEventWire):
    seq: Annotated[int, Field(ge=FIRST_SEQ, le=MAX_INT)]
    prev: _B64_HASH | None
    host: Annotated[str, PlainValidator(validate_server_name)]
    host_signature: _SignatureWire


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise InvalidEvent(f"{where}: {first['msg']}") from e


def _decode(text: str) -> bytes:
    try:
        return b64decode(text)
    except InvalidEncoding as e:
        raise InvalidEvent(str(e)) from e


@dataclass(frozen=True, slots=True)
class Event:
    """An unsigned event; ``type`` comes from its content model, so they cannot disagree."""

    network: str
    thread: str | None
    sender: ParticipantId
    origin: str
    origin_ts: int
    content: Content
    # Its canonical bytes, once computed: hashing, signing and verifying all need them.
    _canonical: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_network_name(self.network)
        validate_server_name(self.origin)
        if not isinstance(self.sender, ParticipantId) or not isinstance(self.content, Content):
            raise InvalidEvent("sender must be a ParticipantId and content a Content model")
        if type(self.origin_ts) is not int or not 0 <= self.origin_ts <= MAX_INT:
            raise InvalidEvent(f"origin_ts must be an integer in [0, {MAX_INT}]")
        if self.content.in_thread:
            if self.thread is None:
                raise InvalidEvent(f"{self.type} needs a thread")
            validate_thread_name(self.thread)
        elif self.thread is not None:
            raise InvalidEvent(f"{self.type} is a network event and takes no thread")

    @property
    def type(self) -> str:
        return self.content.event_type

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "network": self.network,
            "thread": self.thread,
            "sender": str(self.sender),
            "origin": self.origin,
            "origin_ts": self.origin_ts,
            "content": self.content.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: Any) -> Event:
        received = encode_canonical(data)
        if len(received) > MAX_EVENT_BYTES:
            raise InvalidEvent(f"event is over {MAX_EVENT_BYTES} bytes")
        wire = _validate(_EventWire, data)
        content_model = CONTENT_TYPES.get(wire.type)
        if content_model is None:
            raise InvalidEvent(f"unknown event type {wire.type!r}")
        content = _validate(content_model, wire.content)
        try:
            sender = ParticipantId.parse(wire.sender)
            event = cls(wire.network, wire.thread, sender, wire.origin, wire.origin_ts, content)
        except InvalidIdentifier as e:
            raise InvalidEvent(str(e)) from e
        if not encodes_to(event.to_wire(), received):
            raise InvalidEvent("event is not in canonical form (e.g. a null optional field)")
        object.__setattr__(event, "_canonical", received)
        return event

    def canonical_bytes(self) -> bytes:
        """What the origin signs and the content hash is taken of."""
        if self._canonical is None:
            object.__setattr__(self, "_canonical", encode_canonical(self.to_wire()))
        return self._canonical  # type: ignore[return-value]  # set just above


@dataclass(frozen=True, slots=True)
class Signature:
    key_id: str
    sig: bytes

    def to_wire(self) -> dict[str, str]:
        return {"key_id": self.key_id, "sig": b64encode(self.sig)}

    @classmethod
    def _from_model(cls, model: _SignatureWire) -> Signature:
        return cls(model.key_id, _decode(model.sig))


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """An event with its content hash and its origin node's signature over the same bytes."""

    event: Event
    hash: bytes
    signature: Signature

    @property
    def event_id(self) -> str:
        return event_id(self.hash)

    def to_wire(self) -> dict[str, Any]:
        return {
            "event": self.event.to_wire(),
            "hash": b64encode(self.hash),
            "signature": self.signature.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: Any) -> SignedEvent:
        """Parse and bound-check; authenticity is ``verify_event``'s job."""
        wire = _validate(_SignedEventWire, data)
        return cls._from_model(wire)

    @classmethod
    def _from_model(cls, wire: _SignedEventWire) -> SignedEvent:
        event = Event.from_wire(wire.event)
        return cls(event, _decode(wire.hash), Signature._from_model(wire.signature))


@dataclass(frozen=True, slots=True)
class SequencedEvent:
    """A signed event placed at ``seq`` in its network's hash chain by the host."""

    signed: SignedEvent
    seq: int
    prev: bytes | None
    host: str
    host_signature: Signature
    _sequence: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_server_name(self.host)
        if type(self.seq) is not int or not FIRST_SEQ <= self.seq <= MAX_INT:
            raise InvalidEvent(f"seq must be an integer in [{FIRST_SEQ}, {MAX_INT}]")
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
            data = _sequence_bytes(self.event_id, self.host, self.network, self.prev, self.seq)
            object.__setattr__(self, "_sequence", data)
        return self._sequence  # type: ignore[return-value]  # set just above

    @property
    def link_hash(self) -> bytes:
        """What the next event's ``prev`` must equal."""
        return hashlib.sha256(self.sequence_bytes()).digest()

    def to_wire(self) -> dict[str, Any]:
        return {
            **self.signed.to_wire(),
            "seq": self.seq,
            "prev": None if self.prev is None else b64encode(self.prev),
            "host": self.host,
            "host_signature": self.host_signature.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: Any) -> SequencedEvent:
        wire = _validate(_SequencedEventWire, data)
        prev = None if wire.prev is None else _decode(wire.prev)
        signed = SignedEvent._from_model(wire)
        host_signature = Signature._from_model(wire.host_signature)
        return cls(signed, wire.seq, prev, wire.host, host_signature)


def _sequence_bytes(eid: str, host: str, network: str, prev: bytes | None, seq: int) -> bytes:
    return encode_canonical(
        {
            "event_id": eid,
            "host": host,
            "network": network,
            "prev": None if prev is None else b64encode(prev),
            "seq": seq,
        }
    )


def _event_bytes(event: Event) -> bytes:
    data = event.canonical_bytes()
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event is over {MAX_EVENT_BYTES} bytes")
    return data


def content_hash(event: Event) -> bytes:
    return hashlib.sha256(_event_bytes(event)).digest()


def event_id(content_hash: bytes) -> str:
    if len(content_hash) != _HASH_BYTES:
        raise InvalidEvent(f"a content hash is {_HASH_BYTES} bytes")
    return "$" + b64encode(content_hash)


def sign_event(event: Event, key: SigningKey) -> SignedEvent:
    data = _event_bytes(event)
    signature = Signature(key.key_id, key.sign(data))
    return SignedEvent(event, hashlib.sha256(data).digest(), signature)


def _lookup(lookup: KeyLookup, server: str, key_id: str) -> VerifyKey:
    key = lookup(server, key_id)
    if key is None:
        raise UnknownKey(f"no pinned key {key_id} for {server}")
    if key.key_id != key_id:
        raise InvalidSignature(detail=f"lookup for {key_id} returned {key.key_id}")
    return key


def verify_event(signed: SignedEvent, lookup: KeyLookup, *, checked: Container[SignatureCheck] = ()) -> None:
    """Check the content hash, the origin's signature, and that the sender lives at origin.
    A signature whose exact check is in ``checked`` (``federation.signature_batches``) is
    not run again."""
    event = signed.event
    if event.sender.server != event.origin:
        raise InvalidEvent(f"{event.sender} can only send through its home node")
    data = _event_bytes(event)
    if not hmac.compare_digest(hashlib.sha256(data).digest(), signed.hash):
        raise InvalidSignature(detail=f"content hash mismatch for {signed.event_id}")
    _verify((_lookup(lookup, event.origin, signed.signature.key_id), data, signed.signature.sig), checked)


def _verify(check: SignatureCheck, checked: Container[SignatureCheck]) -> None:
    if check not in checked:
        key, data, sig = check
        key.verify(data, sig)


def sequence_event(
    signed: SignedEvent, *, seq: int, prev_hash: bytes | None, host: str, host_key: SigningKey
) -> SequencedEvent:
    """Place ``signed`` at ``seq``; ``prev_hash`` is the previous event's ``link_hash``."""
    body = _sequence_bytes(signed.event_id, host, signed.event.network, prev_hash, seq)
    signature = Signature(host_key.key_id, host_key.sign(body))
    return SequencedEvent(signed, seq, prev_hash, host, signature)


def verify_sequenced(seq_event: SequencedEvent, lookup: KeyLookup, *,
                     checked: Container[SignatureCheck] = ()) -> None:
    """Check the origin's signature and the host's; whether ``host`` really hosts the network
    is the caller's to check against its state."""
    verify_event(seq_event.signed, lookup, checked=checked)
    sig = seq_event.host_signature
    _verify((_lookup(lookup, seq_event.host, sig.key_id), seq_event.sequence_bytes(), sig.sig), checked)


def check_chain_link(prev: SequencedEvent | None, nxt: SequencedEvent) -> None:
    """Raise ``ChainError`` unless ``nxt`` directly follows ``prev`` (``None``: the start)."""
    if prev is None:
        if nxt.seq != FIRST_SEQ or nxt.prev is not None:
            raise ChainError(f"history must start at seq {FIRST_SEQ} with no previous hash")
        if nxt.event.type != "network.created" or nxt.host != nxt.event.origin:
            raise ChainError("history must start with network.created, sequenced by its origin")
        return
    if nxt.network != prev.network or nxt.host != prev.host:
        raise ChainError("event belongs to another network or host")
    if nxt.seq != prev.seq + 1:
        raise ChainError(f"expected seq {prev.seq + 1}, got {nxt.seq}")
    if nxt.prev != prev.link_hash:
        raise ChainError(f"previous hash at seq {nxt.seq} does not match seq {prev.seq}")
