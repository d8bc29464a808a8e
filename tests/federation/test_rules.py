from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from federation.errors import RuleViolation
from federation.event_content import CONTENT_TYPES
from federation.events import Event, content_hash, event_id
from federation.identifiers import ParticipantId
from federation.rules import (
    _RULES,
    MessageRecord,
    NetworkState,
    apply,
    authorize,
    initial_state,
    recipients,
)
from tests.federation.factories import event, pid

ADMITTED_KEY = {"key_id": "ed25519:AAAAAAAA", "public_key": "A" * 43}
ALICE = "person:alice@acme.example"  # host company
BOB = "person:bob@globex.example"  # member company's operator
BOT = "agent:bot@globex.example"
EVE = "person:eve@initech.example"  # a company never admitted
CREATED = event("network.created", ALICE, title="Rollout", history_visible_to_new_members=True)


def run(state: NetworkState, *events: Event, **kw: Any) -> NetworkState:
    for ev in events:
        authorize(state, ev, via=kw.get("via", ev.origin), messages=kw.get("messages"))
        state = apply(state, ev)
    return state


def refused(state: NetworkState, ev: Event, reason: str, **kw: Any) -> None:
    with pytest.raises(RuleViolation) as info:
        authorize(state, ev, via=kw.pop("via", ev.origin), **kw)
    assert info.value.reason == reason
    assert info.value.code == "forbidden"


def attach(sender: str, who: str) -> Event:
    return event("participant.attached", sender, participant=who, display_name="X")


def detach(sender: str, who: str) -> Event:
    return event("participant.detached", sender, participant=who)


def open_thread(sender: str, *participants: str, thread: str = "t1") -> Event:
    return event("thread.opened", sender, thread=thread, title="T", participants=list(participants))


def post(sender: str = BOT, body: str = "hi", **kw: Any) -> Event:
    return event("message.posted", sender, thread=kw.pop("thread", "t1"), body=body, **kw)


def admit(server: str, sender: str = ALICE) -> Event:
    return event("member.admitted", sender, server=server, **ADMITTED_KEY)


@pytest.fixture
def state() -> NetworkState:
    """acme hosts, globex is a member, alice and bot are attached and share thread t1."""
    return run(
        initial_state(CREATED),
        admit("globex.example"),
        attach(ALICE, ALICE),
        attach(BOB, BOT),
        open_thread(ALICE, ALICE, BOT),
    )


def test_initial_state() -> None:
    s = initial_state(CREATED)
    assert (s.name, s.host, s.title, s.closed) == ("acme-rollout", "acme.example", "Rollout", False)
    assert s.history_visible_to_new_members is True
    assert dict(s.members) == {"acme.example": "member"}
    assert recipients(s) == {"acme.example"}


def test_initial_state_needs_network_created() -> None:
    with pytest.raises(RuleViolation) as info:
        initial_state(admit("globex.example"))
    assert info.value.reason == "not_network_created"
    forged = event("network.created", BOB, origin="acme.example", title="R",
                   history_visible_to_new_members=False)
    with pytest.raises(RuleViolation):
        initial_state(forged)


def test_every_event_type_has_a_rule() -> None:
    assert set(_RULES) | {"network.created"} == set(CONTENT_TYPES)


def test_the_happy_path(state: NetworkState) -> None:
    assert state.threads["t1"].open
    assert state.threads["t1"].participants == {pid(ALICE), pid(BOT)}
    assert recipients(state) == {"acme.example", "globex.example"}
    assert run(state, post(BOT), post(ALICE)) == state  # messages do not change the state


def test_apply_returns_a_new_state_and_leaves_the_old_one(state: NetworkState) -> None:
    before = dict(state.members)
    after = run(state, event("member.left", BOB, server="globex.example"))
    assert dict(state.members) == before and state.is_attached(pid(BOT))
    assert after.members["globex.example"] == "left"
    with pytest.raises(TypeError):
        after.members["x"] = "member"  # type: ignore[index]


# --- common checks ----------------------------------------------------------------------


def test_wrong_network(state: NetworkState) -> None:
    refused(state, post(network="other-net"), "wrong_network")


def test_nothing_enters_a_closed_network(state: NetworkState) -> None:
    closed = run(state, event("network.closed", ALICE))
    assert closed.closed
    refused(closed, post(), "network_closed")
    refused(closed, admit("initech.example"), "network_closed")
    refused(closed, event("member.left", BOB, server="globex.example"), "network_closed")


def test_sender_must_be_hosted_by_origin(state: NetworkState) -> None:
    refused(state, post(BOT, origin="acme.example"), "wrong_origin")


def test_only_origin_or_host_may_deliver(state: NetworkState) -> None:
    run(state, post(BOT), via="acme.example")  # the host relays
    refused(state, post(BOT), "wrong_relay", via="initech.example")
    refused(state, post(ALICE), "wrong_relay", via="globex.example")


def test_outsiders_cannot_send(state: NetworkState) -> None:
    refused(state, attach(EVE, EVE), "not_a_member")


@pytest.mark.parametrize(
    "exit_event",
    [
        event("member.left", BOB, server="globex.example"),
        event("member.removed", ALICE, server="globex.example"),
    ],
)
def test_a_company_that_left_or_was_removed_sends_and_receives_nothing(
    state: NetworkState, exit_event: Event
) -> None:
    gone = run(state, exit_event)
    assert recipients(gone) == {"acme.example"}
    assert not gone.is_attached(pid(BOT))
    refused(gone, post(BOT), "not_a_member")
    refused(gone, attach(BOB, BOT), "not_a_member")
    back = run(gone, admit("globex.example"))
    assert recipients(back) == {"acme.example", "globex.example"}
    refused(back, post(BOT), "not_attached")  # re-admission does not re-attach


def test_network_created_cannot_be_replayed(state: NetworkState) -> None:
    refused(state, CREATED, "already_created")


# --- membership -------------------------------------------------------------------------


def test_only_the_host_admits_removes_and_closes(state: NetworkState) -> None:
    refused(state, admit("initech.example", sender=BOB), "not_host")
    refused(state, event("member.removed", BOB, server="acme.example"), "not_host")
    refused(state, event("network.closed", BOB), "not_host")


def test_admission_checks(state: NetworkState) -> None:
    refused(state, admit("globex.example"), "already_member")
    assert recipients(run(state, admit("initech.example"))) == {
        "acme.example", "globex.example", "initech.example"
    }


def test_removal_checks(state: NetworkState) -> None:
    refused(state, event("member.removed", ALICE, server="acme.example"), "host_cannot_leave")
    refused(state, event("member.removed", ALICE, server="initech.example"), "target_not_member")


def test_leaving_checks(state: NetworkState) -> None:
    refused(state, event("member.left", ALICE, server="acme.example"), "host_cannot_leave")
    refused(state, event("member.left", BOB, server="acme.example"), "not_own_company")


# --- participants -----------------------------------------------------------------------


def test_a_company_attaches_and_detaches_only_its_own(state: NetworkState) -> None:
    refused(state, attach(ALICE, "agent:spy@globex.example"), "not_own_participant")
    refused(state, detach(ALICE, BOT), "not_own_participant")
    refused(state, attach(BOB, BOT), "already_attached")
    detached = run(state, detach(BOB, BOT))
    refused(detached, detach(BOB, BOT), "not_attached")
    refused(detached, post(BOT), "not_attached")
    assert run(detached, attach(BOB, BOT)).is_attached(pid(BOT))


# --- threads and messages ---------------------------------------------------------------


def test_opening_a_thread(state: NetworkState) -> None:
    refused(state, open_thread(ALICE, ALICE), "thread_exists")
    refused(state, open_thread(BOB, BOB, thread="t2"), "not_attached")
    refused(state, open_thread(ALICE, BOT, thread="t2"), "not_a_participant")
    refused(state, open_thread(ALICE, ALICE, BOB, thread="t2"), "participant_not_attached")
    assert run(state, open_thread(BOT, BOT, thread="t2")).threads["t2"].open


def test_posting_needs_an_open_thread_the_sender_takes_part_in(state: NetworkState) -> None:
    refused(state, post(thread="nope"), "unknown_thread")
    with_third = run(state, attach(BOB, "agent:other@globex.example"))
    refused(with_third, post("agent:other@globex.example"), "not_a_participant")
    closed = run(state, event("thread.closed", ALICE, thread="t1"))
    refused(closed, post(), "thread_closed")
    refused(closed, event("thread.closed", ALICE, thread="t1"), "thread_closed")


def test_who_may_close_a_thread(state: NetworkState) -> None:
    """t1 was opened by Alice of the host company; t2 by Globex's bot."""
    state = run(state, open_thread(BOT, ALICE, BOT, thread="t2"))
    assert state.threads["t2"].opened_by == pid(BOT)
    # A participant that did not open it, of either company, may not.
    refused(state, event("thread.closed", BOT, thread="t1"), "not_thread_owner")
    refused(state, event("thread.closed", ALICE, thread="t2"), "not_thread_owner")
    # Nor may a member company's operators close a thread the host's side opened.
    refused(state, event("thread.closed", OPS_GLOBEX, thread="t1"), "not_thread_owner")
    # The opener, its company's operators and the host's operators may.
    for closer, thread in ((ALICE, "t1"), (OPS_ACME, "t1"), (BOT, "t2"), (OPS_GLOBEX, "t2"), (OPS_ACME, "t2")):
        assert not run(state, event("thread.closed", closer, thread=thread)).threads[thread].open
    refused(state, event("thread.closed", OPS_ACME, thread="t9"), "unknown_thread")


def message_book(
    *events: Event, deleted: frozenset[str] = frozenset()
) -> Callable[[str], MessageRecord | None]:
    """A stand-in for the node's message storage."""
    book = {}
    for ev in events:
        eid = event_id(content_hash(ev))
        book[eid] = MessageRecord(ev.origin, str(ev.thread), deleted=eid in deleted)
    return book.get


def test_replies_need_a_known_message_in_the_thread(state: NetworkState) -> None:
    original = post(ALICE, "question")
    eid = event_id(content_hash(original))
    run(state, post(BOT, "answer", reply_to=eid), messages=message_book(original))
    refused(state, post(BOT, "answer", reply_to=eid), "unknown_event")  # no lookup given
    elsewhere = post(ALICE, "q", thread="t2")
    refused(state, post(BOT, reply_to=event_id(content_hash(elsewhere))), "unknown_event",
            messages=message_book(elsewhere))


@pytest.mark.parametrize("kind", ["message.edited", "message.deleted"])
def test_edits_and_deletes_belong_to_the_authors_company(state: NetworkState, kind: str) -> None:
    original = post(BOT, "draft")
    eid = event_id(content_hash(original))
    extra = {"body": "final"} if kind == "message.edited" else {}
    book = message_book(original)
    run(state, event(kind, BOT, thread="t1", event_id=eid, **extra), messages=book)
    refused(state, event(kind, ALICE, thread="t1", event_id=eid, **extra), "not_author_company",
            messages=book)
    refused(state, event(kind, BOT, thread="t1", event_id=eid, **extra), "unknown_event")
    refused(state, event(kind, BOT, thread="t1", event_id=eid, **extra), "message_deleted",
            messages=message_book(original, deleted=frozenset({eid})))
    closed = run(state, event("thread.closed", ALICE, thread="t1"))
    refused(closed, event(kind, BOT, thread="t1", event_id=eid, **extra), "thread_closed",
            messages=book)


def test_reactions_need_a_live_message_of_the_thread_and_a_participant(state: NetworkState) -> None:
    original = post(ALICE, "deployed")
    eid = event_id(content_hash(original))
    book = message_book(original)
    run(state, event("message.reacted", BOT, thread="t1", event_id=eid, reaction="seen"), messages=book)
    refused(state, event("message.reacted", BOT, thread="t1", event_id=eid, reaction="seen"), "unknown_event")
    refused(state, event("message.reacted", BOT, thread="t1", event_id=eid, reaction="seen"), "message_deleted",
            messages=message_book(original, deleted=frozenset({eid})))
    refused(state, event("message.reacted", EVE, thread="t1", event_id=eid, reaction="seen"), "not_a_member",
            messages=book)
    outsider = run(state, attach(BOB, "person:bob@globex.example"))  # attached, but not in t1
    refused(outsider, event("message.reacted", "person:bob@globex.example", thread="t1", event_id=eid,
                            reaction="seen"), "not_a_participant", messages=book)
    closed = run(state, event("thread.closed", ALICE, thread="t1"))
    refused(closed, event("message.reacted", BOT, thread="t1", event_id=eid, reaction="seen"), "thread_closed",
            messages=book)


OPS_ACME = "operator:admin@acme.example"
OPS_GLOBEX = "operator:admin@globex.example"
CAROL = "person:carol@acme.example"


def test_participants_join_an_open_thread_added_by_a_participant_or_an_owner_s_operator(state: NetworkState) -> None:
    with_carol = run(state, attach(ALICE, CAROL))
    joined = run(with_carol, event("thread.joined", BOT, thread="t1", participants=[CAROL]))
    assert ParticipantId.parse(CAROL) in joined.threads["t1"].participants
    run(run(state, attach(BOB, "person:bob@globex.example")), event(
        "thread.joined", OPS_ACME, thread="t1", participants=["person:bob@globex.example"]))  # the host's operator
    refused(with_carol, event("thread.joined", OPS_GLOBEX, thread="t1", participants=[CAROL]), "not_thread_owner")
    outsider = run(with_carol, attach(BOB, "person:bob@globex.example"))
    refused(outsider, event("thread.joined", "person:bob@globex.example", thread="t1", participants=[CAROL]),
            "not_a_participant")
    refused(with_carol, event("thread.joined", BOT, thread="t1", participants=[EVE]), "participant_not_attached")
    refused(joined, event("thread.joined", BOT, thread="t1", participants=[CAROL]), "already_participant")
    refused(with_carol, event("thread.joined", BOT, thread="nope", participants=[CAROL]), "unknown_thread")
    closed = run(with_carol, event("thread.closed", ALICE, thread="t1"))
    refused(closed, event("thread.joined", BOT, thread="t1", participants=[CAROL]), "thread_closed")
    # The one who joined may post from here on.
    run(joined, post(CAROL, "hello"))


def test_operators_open_threads_without_being_attached(state: NetworkState) -> None:
    opened = run(state, open_thread(OPS_GLOBEX, ALICE, BOT, thread="t2"))
    assert opened.threads["t2"].open
    refused(state, open_thread(OPS_GLOBEX, ALICE, EVE, thread="t3"), "participant_not_attached")


def test_operators_are_never_attached_and_never_post(state: NetworkState) -> None:
    refused(state, attach(OPS_GLOBEX, OPS_GLOBEX), "not_attachable")
    refused(state, post(OPS_ACME), "not_attached")


def test_a_third_company_cannot_close_a_thread_of_others(state: NetworkState) -> None:
    third = run(state, admit("initech.example"), attach("person:eve@initech.example", EVE))
    refused(third, event("thread.closed", "operator:admin@initech.example", thread="t1"), "not_thread_owner")


def test_the_host_s_operators_silence_agents_in_a_thread(state: NetworkState) -> None:
    silence = event("thread.silenced", OPS_ACME, thread="t1", agents=True)
    # Only the host's operators: not a member's operators, not a participant of the host company.
    refused(state, event("thread.silenced", OPS_GLOBEX, thread="t1", agents=True), "not_host")
    refused(state, event("thread.silenced", ALICE, thread="t1", agents=True), "not_host")
    refused(state, event("thread.silenced", OPS_ACME, thread="t9", agents=True), "unknown_thread")
    refused(state, event("thread.silenced", OPS_ACME, thread="t1", agents=False), "unchanged")
    silenced = run(state, silence)
    assert silenced.threads["t1"].agents_silenced
    refused(silenced, post(BOT), "agents_silenced")  # an agent, of any company
    original = post(BOT, "draft")
    book = message_book(original)
    refused(silenced, event("message.edited", BOT, thread="t1", event_id=event_id(content_hash(original)),
                            body="x"), "agents_silenced", messages=book)
    run(silenced, post(ALICE))  # people still write
    refused(silenced, silence, "unchanged")
    lifted = run(silenced, event("thread.silenced", OPS_ACME, thread="t1", agents=False))
    run(lifted, post(BOT))
    closed = run(state, event("thread.closed", ALICE, thread="t1"))
    refused(closed, silence, "thread_closed")


def test_mentions_name_participants_of_the_thread(state: NetworkState) -> None:
    run(state, post(ALICE, "see this", mentions=[BOT]))
    refused(state, post(ALICE, "see this", mentions=[EVE]), "mention_not_participant")
    outsider = run(state, attach(BOB, "person:bob@globex.example"))  # attached, but not in t1
    refused(outsider, post(ALICE, "bob?", mentions=["person:bob@globex.example"]), "mention_not_participant")
