"""Generate the known answers in tests/data/ that another implementation can check:
protocol_vectors.json (events), request_signing_vectors.json, key_document_vectors.json.

Run once (and only again on a deliberate wire-format change)::

    .venv/bin/python -m tests.federation.make_vectors
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from federation.canonical_json import encode_canonical
from federation.event_content import MessagePosted, NetworkCreated
from federation.events import Event, sign_event
from federation.identifiers import ParticipantId
from federation.key_documents import (
    PastKey,
    build_key_document,
    make_revocation_notice,
    make_rotation_notice,
)
from federation.keys import SigningKey, b64encode
from federation.request_signing import sign_request, signing_bytes
from federation.sequencing import sequence_event

__all__ = [
    "KEY_DOCUMENT_VECTORS_PATH",
    "REQUEST_VECTORS_PATH",
    "VECTORS_PATH",
    "build_key_document_vectors",
    "build_request_vectors",
    "build_vectors",
    "main",
]

_DATA = Path(__file__).resolve().parents[1] / "data"
VECTORS_PATH = _DATA / "protocol_vectors.json"
REQUEST_VECTORS_PATH = _DATA / "request_signing_vectors.json"
KEY_DOCUMENT_VECTORS_PATH = _DATA / "key_document_vectors.json"
SEED = bytes(range(32))
# Keys that replace SEED in the key-document vectors: 0x20..0x3f, then 0x40..0x5f.
SECOND_SEED = bytes(range(32, 64))
THIRD_SEED = bytes(range(64, 96))
ORIGIN = "acme.example"
DESTINATION = "globex.example"
TS = 1_700_000_000_000


def fixed_events() -> list[Event]:
    sender = ParticipantId.parse("person:alice@acme.example")
    created = Event(
        "acme-rollout", None, sender, ORIGIN, 1_700_000_000_000,
        NetworkCreated(title="Rollout Q3", history_visible_to_new_members=False),
    )
    # Non-ASCII, an emoji, quotes, a backslash and a newline: the escaping rules are the
    # usual place where two canonical JSON implementations disagree.
    posted = Event(
        "acme-rollout", "launch", sender, ORIGIN, 1_700_000_000_123,
        MessagePosted(body='Grüße 👋 "ship it" \\ done\n'),
    )
    return [created, posted]


def build_vectors() -> dict[str, Any]:
    key = SigningKey.from_seed(SEED)
    events: list[dict[str, Any]] = []
    prev = None
    for seq, event in enumerate(fixed_events(), start=1):
        canonical = encode_canonical(event.to_wire())
        signed = sign_event(event, key)
        # The host's clock: a few milliseconds after the origin's.
        sequenced = sequence_event(signed, seq=seq, prev_hash=prev, host=ORIGIN, host_ts=event.origin_ts + 7,
                                   host_key=key)
        prev = sequenced.link_hash
        events.append(
            {
                "event": event.to_wire(),
                "canonical": canonical.decode("utf-8"),
                "sha256": hashlib.sha256(canonical).hexdigest(),
                "hash": b64encode(signed.hash),
                "event_id": signed.event_id,
                "signature": b64encode(signed.signature.sig),
                "sequence_canonical": sequenced.sequence_bytes().decode("utf-8"),
                "host_signature": b64encode(sequenced.host_signature.sig),
                "link_hash": b64encode(sequenced.link_hash),
                "sequenced_wire": sequenced.to_wire(),
            }
        )
    return {
        "description": "Agent Network protocol v1 known-answer vectors (see federation/events.py, federation/sequencing.py)",
        "seed_hex": SEED.hex(),
        "public_key": key.verify_key.to_base64(),
        "key_id": key.key_id,
        "fingerprint": key.verify_key.fingerprint,
        "events": events,
    }


def build_request_vectors() -> dict[str, Any]:
    key = SigningKey.from_seed(SEED)
    requests = [
        ("PUT", "/federation/v1/send/txn-1", b'{"events":[]}', "AAECAwQFBgcICQoLDA0ODw"),
        # A query string, percent-encoding and an empty body: all signed exactly as sent.
        ("GET", "/federation/v1/events?network=acme-rollout&after=41&q=a%2Fb", b"",
         "ZmVkZXJhdGlvbi1ub25jZQ"),
    ]
    vectors = []
    for method, path, body, nonce in requests:
        args: dict[str, Any] = {
            "method": method, "path": path, "origin": ORIGIN, "destination": DESTINATION,
            "nonce": nonce, "body": body,
        }
        message = signing_bytes(timestamp_ms=TS, **args)
        vectors.append(
            {
                **{k: v for k, v in args.items() if k != "body"},
                "timestamp_ms": TS,
                "body_hex": body.hex(),
                "signing_bytes": message.decode("utf-8"),
                "signature": b64encode(key.sign(message)),
                "authorization": sign_request(key, now_ms=TS, **args),
            }
        )
    return {
        "description": "Agent Network request-signing known answers (see request_signing.py)",
        "seed_hex": SEED.hex(),
        "key_id": key.key_id,
        "requests": vectors,
    }


def build_key_document_vectors() -> dict[str, Any]:
    """SEED rotated to SECOND_SEED, then to THIRD_SEED, which revokes SEED's key."""
    first, second, third = (SigningKey.from_seed(s) for s in (SEED, SECOND_SEED, THIRD_SEED))
    rotations = [
        make_rotation_notice(first, second.verify_key, server=ORIGIN, now_ms=TS + 1000),
        make_rotation_notice(second, third.verify_key, server=ORIGIN, now_ms=TS + 2000),
    ]
    revocation = make_revocation_notice(third, first.key_id, server=ORIGIN, now_ms=TS + 3000)
    past = [PastKey(first.verify_key, TS + 1000), PastKey(second.verify_key, TS + 2000)]
    document = build_key_document(
        ORIGIN, third, past, rotations, [revocation], now_ms=TS + 4000
    )
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return {
        "description": "Agent Network key document known answers (see key_documents.py)",
        "seeds_hex": [seed.hex() for seed in (SEED, SECOND_SEED, THIRD_SEED)],
        "key_ids": [first.key_id, second.key_id, third.key_id],
        "rotation_signing_bytes": [n.signing_bytes().decode("utf-8") for n in rotations],
        "revocation_signing_bytes": revocation.signing_bytes().decode("utf-8"),
        "document_signing_bytes": encode_canonical(unsigned).decode("utf-8"),
        "document": document,
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    for path, build in (
        (VECTORS_PATH, build_vectors),
        (REQUEST_VECTORS_PATH, build_request_vectors),
        (KEY_DOCUMENT_VECTORS_PATH, build_key_document_vectors),
    ):
        path.write_text(render(build()), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
