"""Deterministic keys and event builders shared by the federation tests."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import strategies as st

from federation.canonical_json import MAX_INT
from federation.errors import UnknownKey
from federation.event_content import CONTENT_TYPES
from federation.events import Event, SignedEvent, sign_event
from federation.identifiers import ParticipantId
from federation.keys import SigningKey, VerifyKey
from federation.sequencing import SequencedEvent, sequence_event

__all__ = [
    "HOST",
    "KEYS",
    "TS",
    "event",
    "json_leaves",
    "json_values",
    "lookup",
    "pid",
    "sequence_chain",
    "signed",
]

HOST = "acme.example"
TS = 1_700_000_000_000
KEYS: dict[str, SigningKey] = {
    server: SigningKey.from_seed(hashlib.sha256(server.encode()).digest())
    for server in ("acme.example", "globex.example", "initech.example", "127.0.0.1:8801")
}


def lookup(server: str, key_id: str) -> VerifyKey:
    key = KEYS.get(server)
    if key is None or key.key_id != key_id:
        raise UnknownKey(f"no key {key_id} for {server}")
    return key.verify_key


def pid(text: str) -> ParticipantId:
    return ParticipantId.parse(text)


def event(
    type_: str,
    sender: str = "person:alice@acme.example",
    *,
    thread: str | None = None,
    network: str = "acme-rollout",
    origin: str | None = None,
    ts: int = TS,
    **content: Any,
) -> Event:
    parsed = pid(sender)
    model = CONTENT_TYPES[type_].model_validate(content)
    return Event(network, thread, parsed, origin or parsed.server, ts, model)


def signed(ev: Event) -> SignedEvent:
    return sign_event(ev, KEYS[ev.origin])


def sequence_chain(events: list[Event], host: str = HOST) -> list[SequencedEvent]:
    chain: list[SequencedEvent] = []
    for ev in events:
        prev = chain[-1].link_hash if chain else None
        chain.append(
            sequence_event(
                signed(ev), seq=len(chain) + 1, prev_hash=prev, host=host, host_ts=max(ev.origin_ts, TS),
                host_key=KEYS[host],
            )
        )
    return chain


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_INT, max_value=MAX_INT)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=5)
    | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
