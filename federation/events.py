"""Events: what a company said, signed by its node.

- The origin node signs the canonical bytes of the unsigned event; their SHA-256 is the
  content hash and names the event (``$`` + base64url). Nobody, the host included, can alter
  what another company's participant said without breaking that signature.
- ``from_wire`` re-encodes what it parsed and requires the same canonical bytes as received,
  so the hash computed here is the hash the sender signed: one wire form per event.
- Two identical posts by one sender in the same millisecond are one event (same id); a node
  that wants both keeps ``origin_ts`` strictly increasing per sender.

Where the host puts an event (sequence number, hash chain, host signature) is
``federation.sequencing``.
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
    "MAX_EVENT_BYTES",
    "Event",
    "KeyLookup",
    "Signature",
    "SignatureCheck",
    "SignedEvent",
    "content_hash",
    "event_id",
    "sign_event",
    "verify_event",
]

# 64 KiB of canonical bytes per unsigned event: four maximal 16 Ki-character bodies' worth,
# and small enough that a batch of events stays a modest HTTP body.
MAX_EVENT_BYTES = 64 * 1024
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
