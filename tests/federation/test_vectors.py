"""The wire format must not drift: recompute the stored known answers from scratch."""

from __future__ import annotations

import hashlib
import json

import pytest

from federation.canonical_json import encode_canonical, parse_json
from federation.events import Event
from federation.keys import SigningKey, VerifyKey, b64decode
from federation.sequencing import SequencedEvent, verify_sequenced
from tests.federation.make_vectors import VECTORS_PATH, build_vectors, render

STORED = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def test_the_generator_reproduces_the_stored_file_exactly() -> None:
    assert render(build_vectors()) == VECTORS_PATH.read_text(encoding="utf-8")


def test_key_material() -> None:
    key = SigningKey.from_seed(bytes.fromhex(STORED["seed_hex"]))
    assert STORED["seed_hex"] == bytes(range(32)).hex()
    assert key.verify_key.to_base64() == STORED["public_key"]
    assert key.key_id == STORED["key_id"]
    assert key.verify_key.fingerprint == STORED["fingerprint"]


@pytest.mark.parametrize("vector", STORED["events"], ids=lambda v: v["event"]["type"])
def test_event_vector(vector: dict) -> None:  # type: ignore[type-arg]
    key = SigningKey.from_seed(bytes.fromhex(STORED["seed_hex"]))
    public = VerifyKey.from_base64(STORED["public_key"])
    canonical = vector["canonical"].encode("utf-8")

    assert encode_canonical(Event.from_wire(vector["event"]).to_wire()) == canonical
    assert hashlib.sha256(canonical).hexdigest() == vector["sha256"]
    assert b64decode(vector["hash"]) == hashlib.sha256(canonical).digest()
    assert vector["event_id"] == "$" + vector["hash"]
    assert key.sign(canonical) == b64decode(vector["signature"])  # ed25519 is deterministic
    public.verify(canonical, b64decode(vector["signature"]))
    public.verify(vector["sequence_canonical"].encode(), b64decode(vector["host_signature"]))
    link = hashlib.sha256(vector["sequence_canonical"].encode()).digest()
    assert b64decode(vector["link_hash"]) == link

    wire = parse_json(json.dumps(vector["sequenced_wire"]))
    sequenced = SequencedEvent.from_wire(wire)
    verify_sequenced(sequenced, lambda server, key_id: public)
    assert sequenced.event_id == vector["event_id"]
