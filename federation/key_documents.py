"""Published node keys: the self-signed key document, rotation notices and revocations.

A node publishes one document listing every key it has used: the current key
(``valid_until: null``) and past keys with the last ``origin_ts`` they may sign, so events
signed before a rotation still verify. The current key signs the canonical JSON of the
document without its ``signature``.

A peer trusts a document only when its signer is a key pinned at peering, or is reached from
one through **rotation notices**, each signed by the old key and naming the new one in full:
a peer that pinned A follows the node through A→B→C with no admin involved, and only a
holder of A could have started that chain. Once its signer is trusted, the document vouches
for the keys it lists.

A **revocation notice** withdraws a key for good (it verifies nothing, whatever its
``valid_until``). It must be signed by *another* key of the server: one signed by the
revoked key itself says nothing about which key the server still holds, so it is not
counted. The builder refuses a revocation whose signer is itself revoked; the verifier counts
every revocation signed by a different key, so a document breaking that rule can only lose
keys, never gain one. A document signed by a revoked key is refused.

Left to the caller, because it needs state: pass as ``pinned`` only keys not known to be
revoked, keep revocations for good, and ignore a document whose ``ts`` is not newer than the
last one accepted, so an old document cannot be replayed to undo a rotation.

Each signed shape has its own set of keys, so no signature passes as another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from federation.canonical_json import MAX_INT, encode_canonical
from federation.errors import InvalidEncoding, InvalidKeyDocument, InvalidSignature, UnknownKey
from federation.identifiers import validate_server_name
from federation.keys import SigningKey, VerifyKey, b64decode, b64encode

__all__ = [
    "MAX_DOCUMENT_KEYS",
    "MAX_DOCUMENT_NOTICES",
    "KeyInfo",
    "PastKey",
    "RevocationNotice",
    "RotationNotice",
    "VerifiedKeys",
    "build_key_document",
    "key_valid_at",
    "make_revocation_notice",
    "make_rotation_notice",
    "verify_key_document",
]

# A node that rotates yearly and on every incident stays far below 32 keys for decades; the
# bound keeps a document (about 100 bytes a key, 300 a notice) near 20 KiB at most, and the
# chain walk at 32 signature checks.
MAX_DOCUMENT_KEYS = 32
MAX_DOCUMENT_NOTICES = 32

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)
_KEY_ID = Annotated[str, Field(pattern=r"^ed25519:[A-Za-z0-9_-]{8}$")]
_PUBLIC_KEY = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]  # 32 bytes
_TS = Annotated[int, Field(ge=0, le=MAX_INT)]
_SERVER = Annotated[str, PlainValidator(validate_server_name)]


class _SignatureWire(BaseModel):
    model_config = _STRICT
    key_id: _KEY_ID
    sig: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")]  # 64 bytes


class _KeyWire(BaseModel):
    model_config = _STRICT
    key_id: _KEY_ID
    public_key: _PUBLIC_KEY
    valid_until: _TS | None


class _RotationWire(BaseModel):
    model_config = _STRICT
    server: _SERVER
    old_key_id: _KEY_ID
    new_key_id: _KEY_ID
    new_public_key: _PUBLIC_KEY
    ts: _TS
    signature: _SignatureWire


class _RevocationWire(BaseModel):
    model_config = _STRICT
    server: _SERVER
    key_id: _KEY_ID
    ts: _TS
    signature: _SignatureWire


class _DocumentWire(BaseModel):
    model_config = _STRICT
    server: _SERVER
    ts: _TS
    keys: Annotated[list[_KeyWire], Field(min_length=1, max_length=MAX_DOCUMENT_KEYS)]
    rotations: Annotated[list[_RotationWire], Field(max_length=MAX_DOCUMENT_NOTICES)]
    revocations: Annotated[list[_RevocationWire], Field(max_length=MAX_DOCUMENT_NOTICES)]
    signature: _SignatureWire


@dataclass(frozen=True, slots=True)
class PastKey:
    """A retired key to keep listing: it verifies events with ``origin_ts <= valid_until``."""

    verify_key: VerifyKey
    valid_until: int


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key to pin: ``valid_until`` is ``None`` for the current key."""

    key_id: str
    verify_key: VerifyKey
    valid_until: int | None
    revoked: bool = False

    def __post_init__(self) -> None:
        if self.verify_key.key_id != self.key_id:
            raise InvalidKeyDocument(f"key id {self.key_id} does not match its public key")


@dataclass(frozen=True, slots=True)
class RotationNotice:
    """``old_key_id`` hands over to ``new_key``; signed by the old key."""

    server: str
    old_key_id: str
    new_key: VerifyKey
    ts: int
    signature: bytes

    def signing_bytes(self) -> bytes:
        return encode_canonical(self._body())

    def to_wire(self) -> dict[str, Any]:
        signature = {"key_id": self.old_key_id, "sig": b64encode(self.signature)}
        return {**self._body(), "signature": signature}

    def _body(self) -> dict[str, Any]:
        return {
            "new_key_id": self.new_key.key_id,
            "new_public_key": self.new_key.to_base64(),
            "old_key_id": self.old_key_id,
            "server": self.server,
            "ts": self.ts,
        }


@dataclass(frozen=True, slots=True)
class RevocationNotice:
    """``key_id`` verifies nothing any more; signed by ``signer_key_id``, another key."""

    server: str
    key_id: str
    ts: int
    signer_key_id: str
    signature: bytes

    def signing_bytes(self) -> bytes:
        return encode_canonical({"key_id": self.key_id, "server": self.server, "ts": self.ts})

    def to_wire(self) -> dict[str, Any]:
        signature = {"key_id": self.signer_key_id, "sig": b64encode(self.signature)}
        return {"key_id": self.key_id, "server": self.server, "ts": self.ts,
                "signature": signature}


@dataclass(frozen=True, slots=True)
class VerifiedKeys:
    """What an accepted document says: the keys to pin now and every revoked key id."""

    server: str
    ts: int
    current_key_id: str
    keys: tuple[KeyInfo, ...]
    revoked_key_ids: frozenset[str]

    def get(self, key_id: str) -> KeyInfo | None:
        return next((info for info in self.keys if info.key_id == key_id), None)

    def key_for(self, key_id: str, *, at_ms: int) -> VerifyKey:
        """The key that may verify something dated ``at_ms``, or ``UnknownKey``."""
        info = self.get(key_id)
        if info is None or not key_valid_at(info, at_ms):
            raise UnknownKey(f"no key {key_id} of {self.server} valid at {at_ms}")
        return info.verify_key


@dataclass(frozen=True, slots=True)
class _Document:
    server: str
    ts: int
    keys: tuple[KeyInfo, ...]
    rotations: tuple[RotationNotice, ...]
    revocations: tuple[RevocationNotice, ...]
    signer_key_id: str
    signature: bytes

    def signing_bytes(self) -> bytes:
        return encode_canonical(self._body())

    def to_wire(self) -> dict[str, Any]:
        signature = {"key_id": self.signer_key_id, "sig": b64encode(self.signature)}
        return {**self._body(), "signature": signature}

    def _body(self) -> dict[str, Any]:
        """Notices go in whole, their own signatures included."""
        return {
            "keys": [
                {"key_id": k.key_id, "public_key": k.verify_key.to_base64(),
                 "valid_until": k.valid_until}
                for k in self.keys
            ],
            "revocations": [notice.to_wire() for notice in self.revocations],
            "rotations": [notice.to_wire() for notice in self.rotations],
            "server": self.server,
            "ts": self.ts,
        }


def key_valid_at(key_info: KeyInfo, ts_ms: int) -> bool:
    """A revoked key verifies nothing; a past key, only what is dated up to ``valid_until``."""
    if key_info.revoked:
        return False
    return key_info.valid_until is None or ts_ms <= key_info.valid_until


def make_rotation_notice(
    old_key: SigningKey, new_key: VerifyKey, *, server: str, now_ms: int
) -> RotationNotice:
    if new_key.key_id == old_key.key_id:
        raise InvalidKeyDocument("a key cannot rotate to itself")
    unsigned = RotationNotice(validate_server_name(server), old_key.key_id, new_key, now_ms, b"")
    return replace(unsigned, signature=old_key.sign(unsigned.signing_bytes()))


def make_revocation_notice(
    signer: SigningKey, revoked_key_id: str, *, server: str, now_ms: int
) -> RevocationNotice:
    if signer.key_id == revoked_key_id:
        raise InvalidKeyDocument("a revocation must be signed by another key")
    unsigned = RevocationNotice(
        validate_server_name(server), revoked_key_id, now_ms, signer.key_id, b""
    )
    return replace(unsigned, signature=signer.sign(unsigned.signing_bytes()))


def build_key_document(
    server: str, current: SigningKey, past: Sequence[PastKey],
    rotations: Sequence[RotationNotice], revocations: Sequence[RevocationNotice], *, now_ms: int,
) -> dict[str, Any]:
    """The wire document, signed by ``current``; refuses one a peer would refuse."""
    revoked = {notice.key_id for notice in revocations}
    if current.key_id in revoked:
        raise InvalidKeyDocument("the current key is revoked")
    if any(notice.signer_key_id in revoked for notice in revocations):
        raise InvalidKeyDocument("a revocation is signed by a revoked key")
    keys = (KeyInfo(current.key_id, current.verify_key, None), *tuple(KeyInfo(p.verify_key.key_id, p.verify_key, p.valid_until) for p in past))
    unsigned = _Document(server, now_ms, keys, tuple(rotations), tuple(revocations), current.key_id, b"")
    wire = replace(unsigned, signature=current.sign(unsigned.signing_bytes())).to_wire()
    _parse_document(wire)  # the same structural checks a peer will run
    return wire


def verify_key_document(
    wire: Any, *, server: str, pinned: Mapping[str, VerifyKey], first_contact: bool = False
) -> VerifiedKeys:
    """Accept ``wire`` as ``server``'s key document, trusting only ``pinned`` keys.

    ``first_contact``: nothing of ``server`` is pinned and the document came from ``server``
    itself over TLS that proved its name, so its own signer is the root of trust. Never for a
    document relayed by anyone else.

    Raises ``InvalidKeyDocument`` (shape, size, other server, contradictions),
    ``UnknownKey`` (no pinned key leads to the signer) or ``InvalidSignature``.
    """
    doc = _parse_document(wire)
    if doc.server != server:
        raise InvalidKeyDocument(f"document is for {doc.server}, not {server}")
    if first_contact:
        if pinned:
            raise InvalidKeyDocument("first contact is only for a server with no pinned key")
        pinned = {info.key_id: info.verify_key for info in doc.keys if info.key_id == doc.signer_key_id}
    chain = _follow_rotations(doc, pinned)
    signer = chain.get(doc.signer_key_id)
    if signer is None:
        raise UnknownKey(f"no pinned key of {server} leads to {doc.signer_key_id}")
    signer.verify(doc.signing_bytes(), doc.signature)
    listed = {info.key_id: info for info in doc.keys}
    for key_id, key in chain.items():
        if key_id in listed and listed[key_id].verify_key != key:
            raise InvalidKeyDocument(f"document lists another public key for {key_id}")
    known = {**chain, **{key_id: info.verify_key for key_id, info in listed.items()}}
    revoked = _counted_revocations(doc, known)
    if doc.signer_key_id in revoked:
        raise InvalidKeyDocument("document is signed by a revoked key")
    keys = tuple(
        KeyInfo(info.key_id, info.verify_key, info.valid_until, info.key_id in revoked)
        for info in doc.keys
    )
    return VerifiedKeys(server, doc.ts, doc.signer_key_id, keys, frozenset(revoked))


def _follow_rotations(doc: _Document, pinned: Mapping[str, VerifyKey]) -> dict[str, VerifyKey]:
    """Pinned keys plus every key they reach by rotation notices. Each notice is checked at
    most once (32 checks at worst); one reached from a trusted key that fails is a forgery."""
    trusted: dict[str, VerifyKey] = {}
    for key_id, key in pinned.items():
        if key.key_id != key_id:
            raise InvalidSignature(detail=f"pinned key under {key_id} has id {key.key_id}")
        trusted[key_id] = key
    by_old: dict[str, list[RotationNotice]] = {}
    for notice in doc.rotations:
        by_old.setdefault(notice.old_key_id, []).append(notice)
    queue = list(trusted)
    while queue:
        old_id = queue.pop()
        for notice in by_old.pop(old_id, []):
            trusted[old_id].verify(notice.signing_bytes(), notice.signature)
            new_id = notice.new_key.key_id
            if new_id in trusted:
                if trusted[new_id] != notice.new_key:
                    raise InvalidKeyDocument(f"two public keys claim the id {new_id}")
                continue
            trusted[new_id] = notice.new_key
            queue.append(new_id)
    return trusted


def _counted_revocations(doc: _Document, known: Mapping[str, VerifyKey]) -> set[str]:
    revoked: set[str] = set()
    for notice in doc.revocations:
        if notice.signer_key_id == notice.key_id:
            continue  # self-signed: proves nothing about the keys the server still holds
        signer = known.get(notice.signer_key_id)
        if signer is None:
            raise InvalidKeyDocument(f"revocation of {notice.key_id} signed by an unlisted key")
        signer.verify(notice.signing_bytes(), notice.signature)
        revoked.add(notice.key_id)
    return revoked


def _parse_document(wire: Any) -> _Document:
    """Shape, bounds and internal consistency; says nothing yet about trust."""
    try:
        model = _DocumentWire.model_validate(wire)
    except ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise InvalidKeyDocument(f"{where}: {first['msg']}") from e
    keys = tuple(KeyInfo(k.key_id, _public(k.public_key), k.valid_until) for k in model.keys)
    current = [info.key_id for info in keys if info.valid_until is None]
    if len({info.key_id for info in keys}) != len(keys):
        raise InvalidKeyDocument("a key id is listed twice")
    if current != [model.signature.key_id]:
        raise InvalidKeyDocument("exactly one key, the signing key, must have no valid_until")
    if any(n.server != model.server for n in model.rotations) or any(
            n.server != model.server for n in model.revocations):
        raise InvalidKeyDocument(f"a notice is for another server than {model.server}")
    rotations = tuple(_rotation(r) for r in model.rotations)
    revocations = tuple(
        RevocationNotice(r.server, r.key_id, r.ts, r.signature.key_id, _bytes(r.signature.sig))
        for r in model.revocations
    )
    return _Document(
        model.server, model.ts, keys, rotations, revocations, model.signature.key_id,
        _bytes(model.signature.sig),
    )


def _rotation(wire: _RotationWire) -> RotationNotice:
    new_key = _public(wire.new_public_key)
    if new_key.key_id != wire.new_key_id:
        raise InvalidKeyDocument(f"key id {wire.new_key_id} does not match its public key")
    if wire.signature.key_id != wire.old_key_id or wire.old_key_id == wire.new_key_id:
        raise InvalidKeyDocument("a rotation must be signed by its old key, for a new key")
    sig = _bytes(wire.signature.sig)
    return RotationNotice(wire.server, wire.old_key_id, new_key, wire.ts, sig)


def _public(text: str) -> VerifyKey:
    return VerifyKey(_bytes(text))  # the pattern already fixed the length at 32 bytes


def _bytes(text: str) -> bytes:
    try:
        return b64decode(text)
    except InvalidEncoding as e:
        raise InvalidKeyDocument(str(e)) from e
