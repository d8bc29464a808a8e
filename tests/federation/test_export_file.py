"""The offline check of a network export: a genuine history verifies; every alteration is
caught at its seq; keys are bounded by their validity, revocation and the reader's pins."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from federation.errors import InvalidExport
from federation.events import Event, sign_event
from federation.export_file import EXPORT_FORMAT, MAX_EXPORT_BYTES, normalize_fingerprint, parse_export
from federation.export_replay import verify_export
from federation.key_documents import PastKey, build_key_document, make_rotation_notice
from federation.keys import SigningKey, b64encode
from federation.sequencing import SequencedEvent, sequence_event
from tests.federation.factories import KEYS, TS, event

HOST, MEMBER = "acme.example", "globex.example"
OP_A, OP_G = "operator:admin@acme.example", "operator:admin@globex.example"
OPS, DELIVERY = "agent:ops@acme.example", "agent:delivery@globex.example"
NEW_GLOBEX = SigningKey.from_seed(hashlib.sha256(b"globex, rotated").digest())
ROTATED_AT = TS + 50


def _history() -> list[Event]:
    g = KEYS[MEMBER].verify_key
    return [
        event("network.created", OP_A, title="Rollout", history_visible_to_new_members=True),
        event("member.admitted", OP_A, server=MEMBER, key_id=g.key_id, public_key=g.to_base64()),
        event("participant.attached", OP_A, participant=OPS, display_name="Customer Ops"),
        event("participant.attached", OP_G, participant=DELIVERY, display_name="Delivery"),
        event("thread.opened", OP_A, thread="status", title="Status", participants=[OPS, DELIVERY]),
        event("message.posted", OPS, thread="status", body="Ready for Thursday.", ts=TS + 10),
        event("message.posted", DELIVERY, thread="status", body="Confirmed.", ts=TS + 20),
        event("message.posted", OPS, thread="status", body="<script>alert(1)</script>", ts=TS + 30),
    ]


def _chain(events: list[Event], signer: dict[int, SigningKey] | None = None) -> list[SequencedEvent]:
    """Sequenced by the host; `signer` overrides the origin's key at some indexes."""
    chain: list[SequencedEvent] = []
    for i, ev in enumerate(events):
        key = (signer or {}).get(i, KEYS[ev.origin])
        chain.append(sequence_event(sign_event(ev, key), seq=i + 1, prev_hash=chain[-1].link_hash if chain else None,
                                    host=HOST, host_ts=max(ev.origin_ts, TS), host_key=KEYS[HOST]))
    return chain


def _key(key: SigningKey, *, valid_until: int | None = None, usable_until: int | None = None,
         revoked: bool = False, source: str = "peer") -> dict[str, Any]:
    return {"key_id": key.key_id, "public_key": key.verify_key.to_base64(), "valid_until": valid_until,
            "usable_until": usable_until, "revoked": revoked, "source": source}


def _document(chain: list[SequencedEvent], keys: dict[str, list[dict]] | None = None,
              documents: dict[str, dict] | None = None) -> dict[str, Any]:
    return {"format": EXPORT_FORMAT, "network": "acme-rollout", "title": "Rollout", "host": HOST,
            "exported_by": MEMBER, "exported_at": TS + 1000,
            "head": {"seq": len(chain), "link_hash": b64encode(chain[-1].link_hash)},
            "keys": keys or {HOST: [_key(KEYS[HOST], source="own")], MEMBER: [_key(KEYS[MEMBER])]},
            "key_documents": documents or {}, "events": [e.to_wire() for e in chain]}


def _verify(doc: dict[str, Any], **pins: list[str]):
    return verify_export(parse_export(json.dumps(doc).encode()),
                         pins={server.replace("_", "."): fps for server, fps in pins.items()})


def _fp(key: SigningKey) -> str:
    return key.verify_key.fingerprint


def test_a_genuine_export_verifies_and_says_who_said_what():
    report = _verify(_document(_chain(_history())))
    assert report.ok and report.verified_seq == 8 and report.failure is None
    acme, globex = report.companies
    assert (acme.server, acme.role, acme.events, acme.messages) == (HOST, "host", 6, 2)
    assert (globex.server, globex.role, globex.events, globex.messages) == (MEMBER, "member", 2, 1)
    assert [k.fingerprint for k in globex.keys] == [_fp(KEYS[MEMBER])]
    assert acme.keys[0].signed == 6 + 8  # its own events, and the host signature on every event
    assert [(s.seq, s.sender, s.company, s.body) for s in report.said] == [
        (6, OPS, HOST, "Ready for Thursday."), (7, DELIVERY, MEMBER, "Confirmed."),
        (8, OPS, HOST, "<script>alert(1)</script>")]
    assert report.names[DELIVERY] == "Delivery"
    (thread,) = report.threads
    assert (thread.name, thread.title, thread.participants, thread.opened_seq) == ("status", "Status",
                                                                                   (OPS, DELIVERY), 5)


def test_a_changed_body_fails_at_its_seq():
    doc = _document(_chain(_history()))
    doc["events"][6]["event"]["content"]["body"] = "Cancelled."
    report = _verify(doc)
    assert not report.ok and report.failure.seq == 7 and report.failure.stage == "origin signature"
    assert "content hash" in report.failure.reason and report.verified_seq == 6
    assert report.failed_event == f"message.posted by {DELIVERY}"
    assert [s.seq for s in report.said] == [6]  # nothing past the break is reported as said


def test_a_removed_event_breaks_the_chain_where_it_was():
    doc = _document(_chain(_history()))
    del doc["events"][5]
    report = _verify(doc)
    assert (report.failure.seq, report.failure.stage) == (6, "chain")
    assert "expected seq 6, got 7" in report.failure.reason


def test_swapped_events_break_the_chain_at_the_first_of_them():
    doc = _document(_chain(_history()))
    doc["events"][5], doc["events"][6] = doc["events"][6], doc["events"][5]
    assert (_verify(doc).failure.seq, _verify(doc).failure.stage) == (6, "chain")


def test_an_altered_sequencing_field_fails_the_host_signature():
    doc = _document(_chain(_history()))
    doc["events"][7]["host_ts"] += 1  # the last event: no later link depends on it
    report = _verify(doc)
    assert (report.failure.seq, report.failure.stage) == (8, "host signature")


def test_a_forged_key_in_the_keys_block_fails_at_the_first_event_it_signed():
    doc = _document(_chain(_history()))
    doc["keys"][MEMBER][0]["public_key"] = NEW_GLOBEX.verify_key.to_base64()  # same id, other bytes
    report = _verify(doc)  # the host's own word in the chain already disagrees
    assert (report.failure.seq, report.failure.stage) == (2, "keys") and "altered" in report.failure.reason
    doc = _document(_chain(_history()))
    doc["keys"][HOST][0]["public_key"] = NEW_GLOBEX.verify_key.to_base64()
    report = _verify(doc)
    assert (report.failure.seq, report.failure.stage) == (1, "origin signature")
    assert "altered" in report.failure.reason


def test_a_key_listed_twice_is_not_an_export():
    doc = _document(_chain(_history()))
    doc["keys"][MEMBER].append(doc["keys"][MEMBER][0])
    with pytest.raises(InvalidExport, match="twice"):
        _verify(doc)


def test_a_history_re_signed_with_other_keys_verifies_only_until_a_pin_says_whose_key_it_is():
    consistent = _document(_chain([*_history()[:1], _admit(NEW_GLOBEX), *_history()[2:]],
                                  signer={3: NEW_GLOBEX, 6: NEW_GLOBEX}),
                           keys={HOST: [_key(KEYS[HOST])], MEMBER: [_key(NEW_GLOBEX)]})
    assert _verify(consistent).ok  # consistent with the keys it carries...
    pinned = _verify(consistent, globex_example=[_fp(KEYS[MEMBER])])  # ...not with globex's real key
    assert (pinned.failure.seq, pinned.failure.stage) == (None, "pin")
    assert _fp(KEYS[MEMBER]) in pinned.failure.reason
    both = copy.deepcopy(consistent)
    both["keys"][MEMBER].append(_key(KEYS[MEMBER]))
    report = _verify(both, globex_example=[_fp(KEYS[MEMBER])])
    assert (report.failure.seq, report.failure.stage) == (4, "pin")
    assert _verify(both, globex_example=[_fp(NEW_GLOBEX)]).ok


def _admit(key: SigningKey) -> Event:
    return event("member.admitted", OP_A, server=MEMBER, key_id=key.key_id,
                 public_key=key.verify_key.to_base64())


def test_a_rotated_key_verifies_what_it_signed_before_it_retired_and_a_pin_follows_the_rotation():
    history = _history()
    signer = {6: NEW_GLOBEX}  # "Confirmed." is signed after the rotation
    keys = {HOST: [_key(KEYS[HOST])],
            MEMBER: [_key(KEYS[MEMBER], valid_until=ROTATED_AT, usable_until=ROTATED_AT + 1), _key(NEW_GLOBEX)]}
    notice = make_rotation_notice(KEYS[MEMBER], NEW_GLOBEX.verify_key, server=MEMBER, now_ms=ROTATED_AT)
    own = build_key_document(MEMBER, NEW_GLOBEX, [PastKey(KEYS[MEMBER].verify_key, ROTATED_AT)], [notice], [],
                             now_ms=ROTATED_AT)
    doc = _document(_chain(history, signer), keys=keys, documents={MEMBER: own})
    report = _verify(doc)
    assert report.ok
    assert {k.key_id: k.signed for k in report.companies[1].keys} == {KEYS[MEMBER].key_id: 1, NEW_GLOBEX.key_id: 1}
    # Pinning the key the reader met first follows the company's own rotation to the new key.
    assert _verify(doc, globex_example=[_fp(KEYS[MEMBER])]).ok
    without_document = {**doc, "key_documents": {}}
    assert _verify(without_document, globex_example=[_fp(KEYS[MEMBER])]).failure.seq == 7
    # An event dated after the old key stopped verifying fails, naming why.
    late = _document(_chain([*history[:6], event("message.posted", DELIVERY, thread="status", body="late",
                                                 ts=ROTATED_AT + 2)]), keys=keys)
    failure = _verify(late).failure
    assert (failure.seq, failure.stage) == (7, "origin signature") and "retired" in failure.reason


def test_a_revoked_key_verifies_nothing():
    doc = _document(_chain(_history()))
    doc["keys"][MEMBER][0]["revoked"] = True
    failure = _verify(doc).failure
    assert (failure.seq, failure.stage) == (4, "origin signature") and "revoked" in failure.reason


def test_a_well_signed_event_that_breaks_the_rules_is_caught():
    outsider = event("message.posted", "agent:intruder@globex.example", thread="status", body="hi", ts=TS + 40)
    report = _verify(_document(_chain([*_history(), outsider])))
    assert (report.failure.seq, report.failure.stage) == (9, "rules")
    assert report.failure.reason.startswith("not_attached")


def test_the_host_vouching_other_bytes_under_a_listed_key_id_is_caught():
    other = NEW_GLOBEX.verify_key.to_base64()
    history = _history()
    history[1] = event("member.admitted", OP_A, server=MEMBER, key_id=KEYS[MEMBER].key_id, public_key=other)
    failure = _verify(_document(_chain(history))).failure
    assert (failure.seq, failure.stage) == (2, "keys")


def test_an_origin_ts_outside_the_window_is_caught():
    history = _history()
    history[5] = event("message.posted", OPS, thread="status", body="from the future", ts=TS + 2 * 3600 * 1000)
    chain = _chain(history[:6])
    # Sequenced with a host time more than an hour before the origin's.
    early = [sequence_event(c.signed, seq=c.seq, prev_hash=c.prev, host=HOST, host_ts=TS, host_key=KEYS[HOST])
             for c in chain[:5]]
    late = sequence_event(chain[5].signed, seq=6, prev_hash=early[-1].link_hash, host=HOST, host_ts=TS,
                          host_key=KEYS[HOST])
    failure = _verify(_document([*early, late])).failure
    assert (failure.seq, failure.stage) == (6, "time window")


def test_a_malformed_event_is_reported_at_its_seq():
    doc = _document(_chain(_history()))
    doc["events"][2]["event"]["content"]["surprise"] = 1
    assert (_verify(doc).failure.seq, _verify(doc).failure.stage) == (3, "event")


def test_the_head_must_be_the_last_event():
    doc = _document(_chain(_history()))
    doc["head"]["seq"] = 9
    assert (_verify(doc).failure.seq, _verify(doc).failure.stage) == (9, "head")
    doc = _document(_chain(_history()))
    doc["head"]["link_hash"] = doc["events"][0]["hash"]
    assert (_verify(doc).failure.seq, _verify(doc).failure.stage) == (8, "head")


def test_the_file_must_name_the_chain_it_holds():
    doc = _document(_chain(_history()))
    doc["host"] = MEMBER
    assert (_verify(doc).failure.seq, _verify(doc).failure.stage) == (1, "chain")


@pytest.mark.parametrize("data, problem", [
    (b"", "not a readable export"),
    (b"\x00garbage", "not a readable export"),
    (b'{"format": "agentnet-export/1", "network": "acme-rol', "not a readable export"),
    (b'{"format": "something-else/1"}', "not an agentnet-export/1 file"),
    (b"[1, 2]", "not an agentnet-export/1 file"),
    (b'{"format": "agentnet-export/1"}', "Field required"),
    (b'{"format": "agentnet-export/1", "x": 1.5}', "not a readable export"),
])
def test_what_is_not_an_export_is_refused_before_any_check(data, problem):
    with pytest.raises(InvalidExport, match=problem):
        parse_export(data)


def test_the_size_is_bounded_before_parsing():
    with pytest.raises(InvalidExport, match="over the limit"):
        parse_export(b" " * (MAX_EXPORT_BYTES + 1))


def test_fingerprints_are_read_in_any_spacing_or_case():
    fp = _fp(KEYS[MEMBER])
    assert normalize_fingerprint(fp.replace(" ", "").lower()) == fp
    with pytest.raises(ValueError):
        normalize_fingerprint("1234")
