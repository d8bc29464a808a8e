"""The host's placement of events: sequencing, its signature, the chain, the time window."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from federation.canonical_json import encode_canonical, parse_json
from federation.errors import ChainError, InvalidEvent, ProtocolError, RuleViolation, UnknownKey
from federation.events import Event
from federation.keys import b64encode
from federation.sequencing import (
    MAX_ORIGIN_AGE_MS,
    MAX_ORIGIN_LEAD_MS,
    SequencedEvent,
    StubEvent,
    check_chain_link,
    check_origin_ts,
    sequence_event,
    verify_sequenced,
    verify_stub,
)
from tests.federation.factories import HOST, KEYS, TS, event, lookup, sequence_chain, signed


def post(body: str = "hello", **kw: Any) -> Event:
    return event("message.posted", thread="t1", body=body, **kw)


def test_sequenced_round_trip_and_verify() -> None:
    created = event("network.created", title="R", history_visible_to_new_members=True)
    chain = sequence_chain([created, post()])
    for item in chain:
        verify_sequenced(item, lookup)
        assert SequencedEvent.from_wire(parse_json(encode_canonical(item.to_wire()))) == item



def chain(n: int = 3) -> list[SequencedEvent]:
    created = event("network.created", title="R", history_visible_to_new_members=True)
    return sequence_chain([created] + [post(f"m{i}", ts=i) for i in range(n - 1)])


def test_a_good_chain_links() -> None:
    items = chain()
    check_chain_link(None, items[0])
    for prev, nxt in itertools.pairwise(items):
        check_chain_link(prev, nxt)
        assert nxt.prev == prev.link_hash


def test_chain_rejects_a_gap_a_repeat_and_reordering() -> None:
    a, b, c = chain()
    with pytest.raises(ChainError, match="expected seq 2"):
        check_chain_link(a, c)
    with pytest.raises(ChainError):
        check_chain_link(b, b)
    with pytest.raises(ChainError):
        check_chain_link(c, b)


def test_chain_detects_a_fork() -> None:
    a, b, _ = chain()
    other = sequence_event(signed(post("rewritten")), seq=2, prev_hash=a.link_hash,
                           host=HOST, host_ts=TS, host_key=KEYS[HOST])
    after_other = sequence_event(signed(post("next")), seq=3, prev_hash=other.link_hash,
                                 host=HOST, host_ts=TS, host_key=KEYS[HOST])
    check_chain_link(a, other)  # each fork is internally consistent...
    with pytest.raises(ChainError, match="previous hash"):
        check_chain_link(b, after_other)  # ...but does not link onto the other


def test_chain_must_start_with_network_created_by_its_host() -> None:
    _, b, _ = chain()
    with pytest.raises(ChainError, match="seq 1"):
        check_chain_link(None, b)
    not_created = sequence_chain([post()])[0]
    with pytest.raises(ChainError, match=r"network\.created"):
        check_chain_link(None, not_created)
    foreign = sequence_chain(
        [event("network.created", title="R", history_visible_to_new_members=True)],
        host="globex.example",
    )[0]
    with pytest.raises(ChainError, match=r"network\.created"):
        check_chain_link(None, foreign)


def test_chain_rejects_another_host() -> None:
    a, _, _ = chain()
    stranger = sequence_event(signed(post()), seq=2, prev_hash=a.link_hash,
                              host="globex.example", host_ts=TS, host_key=KEYS["globex.example"])
    verify_sequenced(stranger, lookup)  # validly signed by globex, yet not this network's host
    with pytest.raises(ChainError, match="host"):
        check_chain_link(a, stranger)


def test_host_signature_covers_seq_and_prev() -> None:
    a, b, _ = chain()
    forgeries = (replace(b, seq=5), replace(b, prev=a.signed.hash), replace(b, host="globex.example"))
    for forged in forgeries:
        with pytest.raises(ProtocolError):
            verify_sequenced(forged, lookup)


def test_sequence_event_validates_seq_and_prev() -> None:
    s = signed(post())
    with pytest.raises(InvalidEvent):
        sequence_event(s, seq=1, prev_hash=bytes(32), host=HOST, host_ts=TS, host_key=KEYS[HOST])
    with pytest.raises(InvalidEvent):
        sequence_event(s, seq=2, prev_hash=None, host=HOST, host_ts=TS, host_key=KEYS[HOST])
    with pytest.raises(InvalidEvent):
        sequence_event(s, seq=0, prev_hash=None, host=HOST, host_ts=TS, host_key=KEYS[HOST])
    with pytest.raises(InvalidEvent):
        sequence_event(s, seq=2, prev_hash=bytes(31), host=HOST, host_ts=TS, host_key=KEYS[HOST])


def test_sequenced_wire_rejects_bad_prev() -> None:
    wire = chain()[1].to_wire()
    wire["prev"] = None
    with pytest.raises(InvalidEvent):
        SequencedEvent.from_wire(wire)
    wire["prev"] = b64encode(bytes(31))
    with pytest.raises(InvalidEvent):
        SequencedEvent.from_wire(wire)




def test_the_host_time_is_signed() -> None:
    _, b, _ = chain()
    with pytest.raises(ProtocolError):
        verify_sequenced(replace(b, host_ts=b.host_ts + 1), lookup)


def test_the_host_time_never_goes_back_along_the_chain() -> None:
    a = chain(1)[0]
    earlier = sequence_event(signed(post()), seq=2, prev_hash=a.link_hash, host=HOST, host_ts=a.host_ts - 1,
                             host_key=KEYS[HOST])
    with pytest.raises(ChainError, match="time goes back"):
        check_chain_link(a, earlier)
    same = sequence_event(signed(post()), seq=2, prev_hash=a.link_hash, host=HOST, host_ts=a.host_ts,
                          host_key=KEYS[HOST])
    check_chain_link(a.head, same)  # equal is fine: two events in one millisecond


@pytest.mark.parametrize("field", ["host_ts"])
def test_the_sequenced_wire_needs_an_integer_host_time(field: str) -> None:
    wire = chain()[1].to_wire()
    for bad in (None, True, "1", -1, 2**53):
        wire[field] = bad
        with pytest.raises(InvalidEvent):
            SequencedEvent.from_wire(wire)
    del wire[field]
    with pytest.raises(InvalidEvent):
        SequencedEvent.from_wire(wire)


@pytest.mark.parametrize("offset, allowed", [
    (MAX_ORIGIN_LEAD_MS, True), (MAX_ORIGIN_LEAD_MS + 1, False),
    (-MAX_ORIGIN_AGE_MS, True), (-MAX_ORIGIN_AGE_MS - 1, False),
    (0, True),
])
def test_origin_ts_must_lie_within_the_window_around_the_host_time(offset: int, allowed: bool) -> None:
    ev = post(ts=TS + offset)
    if allowed:
        check_origin_ts(ev, TS)
    else:
        with pytest.raises(RuleViolation) as refused:
            check_origin_ts(ev, TS)
        assert refused.value.reason == "origin_ts_out_of_range"


@pytest.mark.parametrize("origin_ts", [0, 1, 2**53 - 1])
def test_absurd_origin_times_are_refused(origin_ts: int) -> None:
    with pytest.raises(RuleViolation):
        check_origin_ts(post(ts=origin_ts), TS)


def test_the_host_signature_needs_a_key_from_the_host_lookup() -> None:
    _, b, _ = chain()
    verify_sequenced(b, lookup, host_lookup=lookup)

    def nothing(server: str, key_id: str):
        raise UnknownKey(f"no key {key_id} for {server}")

    with pytest.raises(UnknownKey):  # the origin's keys never verify the host's signature
        verify_sequenced(b, lookup, host_lookup=nothing)


def test_a_stub_links_and_verifies_like_the_event_it_stands_for() -> None:
    a, b, c = chain()
    stub = StubEvent.of(b)
    assert (stub.link_hash, stub.head) == (b.link_hash, b.head)
    check_chain_link(a, stub)
    check_chain_link(stub, c)
    verify_stub(stub, lookup)
    assert StubEvent.from_wire(parse_json(encode_canonical(stub.to_wire()))) == stub
    assert "body" not in str(stub.to_wire()) and "m0" not in str(stub.to_wire())


def test_a_stub_that_lies_about_its_event_or_place_fails() -> None:
    a, b, c = chain()
    other = replace(StubEvent.of(b), event_id="$" + "A" * 43)
    with pytest.raises(ProtocolError):
        verify_stub(other, lookup)  # the host signed another id here
    with pytest.raises(ChainError):
        check_chain_link(other, c)  # and the next link no longer matches
    with pytest.raises(ChainError):
        check_chain_link(None, StubEvent.of(b))  # a chain never starts with a stub
    with pytest.raises(InvalidEvent):
        StubEvent.of(a)
    wire = StubEvent.of(b).to_wire()
    for bad in ({**wire, "seq": 1}, {**wire, "extra": 1}, {**wire, "stub": False}, {k: v for k, v in wire.items()
                                                                                     if k != "origin"}):
        with pytest.raises(InvalidEvent):
            StubEvent.from_wire(bad)
