"""A network's shared history as one file that anyone can check offline.

A node exports a network (``agentnet export``) as one JSON document: every sequenced event in
its stored wire form, and every key needed to check them. Anyone can then check it
(``agentnet verify FILE``) with no node, no database and no network, using only this package:
the origin and host signatures, the hash chain from seq 1 to the head, and the rules, replayed
(``federation.export_replay``).

What the file proves, and what it cannot:

- The keys travel in the file, so on its own the file only proves that its history is
  consistent with *those* keys: someone who rewrites history can sign it again with keys of
  their own. What ties a key to a company is its fingerprint, compared out of band with that
  company (the verifier prints every fingerprint), or given to the verifier as a pin
  (``pins``): then every signature of that company must be made by the pinned key, or by a key
  the company's own key document, signed by a key reached from the pin through rotation
  notices, lists (``federation.key_documents``).
- The head is the exporter's word: an event cut off the end along with the head is not
  noticed. Every event in between is: a removed, reordered or altered event breaks the chain.

Everything is bounded before it is parsed (``MAX_EXPORT_BYTES``, ``MAX_EXPORT_VALUES``,
``MAX_EXPORT_EVENTS``); events are parsed one at a time during the check, so a malformed event
is reported at its seq rather than as an unreadable file.

Format (``EXPORT_FORMAT``), documented in ``docs/protocol.md`` (appendix)::

    {"format": "agentnet-export/1", "network", "title", "host", "exported_by", "exported_at",
     "head": {"seq", "link_hash"}, "keys": {server: [key]}, "key_documents": {server: document},
     "events": [sequenced event, ...]}
    key = {"key_id", "public_key", "valid_until", "usable_until", "revoked", "source"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from federation.canonical_json import MAX_INT, parse_json
from federation.errors import CanonicalJsonError, InvalidEncoding, InvalidExport
from federation.identifiers import validate_network_name, validate_server_name
from federation.keys import VerifyKey, b64decode

__all__ = [
    "EXPORT_FORMAT",
    "MAX_EXPORT_BYTES",
    "MAX_EXPORT_EVENTS",
    "MAX_EXPORT_VALUES",
    "ExportDocument",
    "ExportKey",
    "normalize_fingerprint",
    "parse_export",
]

EXPORT_FORMAT = "agentnet-export/1"
# The parsed document costs roughly ten times its text in memory, so 64 MiB stays under a
# gigabyte on the reader's machine; at about 600 bytes an event that is some 100,000 events.
MAX_EXPORT_BYTES = 64 * 1024 * 1024
# Two ed25519 checks an event (about 0.1 ms each) and the rules: 100,000 events verify in well
# under a minute on a laptop. A node refuses to export a longer history (413).
MAX_EXPORT_EVENTS = 100_000
# Parsing costs per JSON value: an ordinary event is about 25 values, one opening a thread for
# 256 participants about 280; 80 on average leaves room for the keys and documents.
MAX_EXPORT_VALUES = MAX_EXPORT_EVENTS * 80
# A key document lists at most 32 keys (federation.key_documents); a network's host may vouch
# for a few more in one network. Servers: every company that ever signed in the network.
_MAX_KEYS_PER_SERVER = 64
_MAX_SERVERS = 1000

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)
_SERVER = Annotated[str, PlainValidator(validate_server_name)]
_TS = Annotated[int, Field(ge=0, le=MAX_INT)]
_HEX_FINGERPRINT = re.compile(r"[0-9A-F]{32}")


class _KeyWire(BaseModel):
    model_config = _STRICT
    key_id: Annotated[str, Field(pattern=r"^ed25519:[A-Za-z0-9_-]{8}$")]
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
    valid_until: _TS | None
    usable_until: _TS | None  # valid_until plus the grace the exporting node allowed
    revoked: bool
    source: Literal["own", "peer", "vouched"]


class _HeadWire(BaseModel):
    model_config = _STRICT
    seq: Annotated[int, Field(ge=0, le=MAX_INT)]
    link_hash: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")] | None


class _ExportWire(BaseModel):
    model_config = _STRICT
    format: Literal["agentnet-export/1"]
    network: Annotated[str, PlainValidator(validate_network_name)]
    title: Annotated[str, Field(max_length=200)]
    host: _SERVER
    exported_by: _SERVER
    exported_at: _TS
    head: _HeadWire
    keys: Annotated[dict[str, Annotated[list[_KeyWire], Field(max_length=_MAX_KEYS_PER_SERVER)]],
                    Field(max_length=_MAX_SERVERS)]
    key_documents: Annotated[dict[str, dict[str, Any]], Field(max_length=_MAX_SERVERS)]
    events: Annotated[list[Any], Field(max_length=MAX_EXPORT_EVENTS)]


@dataclass(frozen=True, slots=True)
class ExportKey:
    """One key as the file lists it. ``matches_id`` is false when the key id is not the id of
    the public key: such a key verifies nothing, and the first event that names it fails."""

    server: str
    key_id: str
    verify_key: VerifyKey
    valid_until: int | None
    usable_until: int | None
    revoked: bool
    source: str

    @property
    def matches_id(self) -> bool:
        return self.verify_key.key_id == self.key_id

    @property
    def fingerprint(self) -> str:
        return self.verify_key.fingerprint


@dataclass(frozen=True, slots=True)
class ExportDocument:
    """The file, read and bounded; its events are still wire values, checked by the replay."""

    network: str
    title: str
    host: str
    exported_by: str
    exported_at: int
    head_seq: int
    head_link_hash: bytes | None
    keys: Mapping[str, tuple[ExportKey, ...]]
    key_documents: Mapping[str, Mapping[str, Any]]
    events: tuple[Any, ...]


def parse_export(data: bytes) -> ExportDocument:
    """Read an export file's bytes; raise ``InvalidExport`` if they are not one."""
    if len(data) > MAX_EXPORT_BYTES:
        raise InvalidExport(f"the file is {len(data)} bytes, over the limit of {MAX_EXPORT_BYTES}")
    try:
        value = parse_json(data, max_bytes=MAX_EXPORT_BYTES, max_values=MAX_EXPORT_VALUES)
    except CanonicalJsonError as e:
        raise InvalidExport(f"not a readable export (cut short, or not JSON?): {e}") from e
    if not isinstance(value, dict) or value.get("format") != EXPORT_FORMAT:
        found = value.get("format") if isinstance(value, dict) else None
        raise InvalidExport(f"not an {EXPORT_FORMAT} file (format: {found!r})"[:300])
    try:
        wire = _ExportWire.model_validate(value)
    except ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise InvalidExport(f"{where}: {first['msg']}"[:300]) from e
    return ExportDocument(
        network=wire.network, title=wire.title, host=wire.host, exported_by=wire.exported_by,
        exported_at=wire.exported_at, head_seq=wire.head.seq,
        head_link_hash=None if wire.head.link_hash is None else _decode(wire.head.link_hash, "head.link_hash"),
        keys={_server(server): tuple(_key(server, k) for k in keys) for server, keys in wire.keys.items()},
        key_documents={_server(server): doc for server, doc in wire.key_documents.items()},
        events=tuple(wire.events),
    )


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as `VerifyKey.fingerprint` writes it, from any spacing or case; raise
    ``ValueError`` for anything that is not 32 hex digits."""
    bare = re.sub(r"[\s:]", "", text).upper()
    if not _HEX_FINGERPRINT.fullmatch(bare):
        raise ValueError("a fingerprint is 32 hex digits (8 groups of 4)")
    return " ".join(bare[i : i + 4] for i in range(0, 32, 4))


def _server(name: str) -> str:
    try:
        return validate_server_name(name)
    except ValueError as e:
        raise InvalidExport(f"keys: {name[:80]!r} is not a server name") from e


def _key(server: str, wire: _KeyWire) -> ExportKey:
    raw = _decode(wire.public_key, f"keys.{server}.{wire.key_id}")
    return ExportKey(server, wire.key_id, VerifyKey(raw), wire.valid_until, wire.usable_until, wire.revoked,
                     wire.source)


def _decode(text: str, where: str) -> bytes:
    try:
        return b64decode(text)
    except InvalidEncoding as e:
        raise InvalidExport(f"{where}: {e}") from e
