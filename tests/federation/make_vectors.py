"""Generate tests/data/protocol_vectors.json: known answers another implementation can check.

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
from federation.events import Event, sequence_event, sign_event
from federation.identifiers import ParticipantId
from federation.keys import SigningKey, b64encode

__all__ = ["VECTORS_PATH", "build_vectors", "main"]

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "protocol_vectors.json"
SEED = bytes(range(32))
ORIGIN = "acme.example"


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
        sequenced = sequence_event(signed, seq=seq, prev_hash=prev, host=ORIGIN, host_key=key)
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
        "description": "Agent Network protocol v1 known-answer vectors (see federation/events.py)",
        "seed_hex": SEED.hex(),
        "public_key": key.verify_key.to_base64(),
        "key_id": key.key_id,
        "fingerprint": key.verify_key.fingerprint,
        "events": events,
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    VECTORS_PATH.write_text(render(build_vectors()), encoding="utf-8")
    print(f"wrote {VECTORS_PATH}")


if __name__ == "__main__":
    main()
