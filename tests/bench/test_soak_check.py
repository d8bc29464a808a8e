"""The soak's verdict on hand-made histories: each rule is shown catching what it names, and a
clean history passes."""

from __future__ import annotations

from bench.soak_check import NodeCopy, Seen, check_history
from bench.soak_db import ChainCopy
from bench.soak_workload import Ack

HOST, M1, M2 = "h.soak", "m1.soak", "m2.soak"
ALICE, BOB = "agent:a1@m1.soak", "agent:a1@h.soak"
CHAIN = ChainCopy(4, "aa" * 32, ("$c", "$e1", "$e2", "$e3"))


def ack(author: str, n: int, event_id: str, at: float) -> Ack:
    return Ack(author=author, n=n, key=f"k-{author}-{n}", body=f"soak {author} #{n}", event_id=event_id, seq=None,
               acked_at=at, attempts=1, replayed=False)


ACKS = [ack(ALICE, 0, "$e1", 1.0), ack(BOB, 0, "$e2", 2.0), ack(ALICE, 1, "$e3", 3.0)]


def seen(a: Ack, seq: int | None, *, event_id: str | None = None, delivery: dict | None = None) -> Seen:
    return Seen(event_id or a.event_id, seq, a.body, a.author, delivery)


def clean_copy(server: str, chain: ChainCopy = CHAIN) -> NodeCopy:
    return NodeCopy(server, (seen(ACKS[0], 2), seen(ACKS[1], 3), seen(ACKS[2], 4)), chain)


def clean() -> dict[str, NodeCopy]:
    return {s: clean_copy(s) for s in (HOST, M1, M2)}


def test_a_clean_history_passes_every_rule():
    report = check_history(ACKS, clean(), host=HOST)
    assert report.safe
    assert (report.acknowledged, report.lost, report.duplicated, report.reordered, report.diverged,
            report.failed_shown, report.id_mismatch, report.unacknowledged_present) == (3, 0, 0, 0, 0, 0, 0, 0)
    assert report.reordered_per_author == {BOB: 0, ALICE: 0}


def test_a_post_missing_on_one_node_is_lost_once():
    copies = clean()
    copies[M2] = NodeCopy(M2, (seen(ACKS[0], 2), seen(ACKS[2], 4)), CHAIN)
    report = check_history(ACKS, copies, host=HOST)
    assert report.lost == 1 and report.lost_by_node == {HOST: 0, M1: 0, M2: 1}
    assert not report.safe


def test_a_post_still_pending_at_its_author_is_lost_and_counted_pending():
    copies = clean()
    copies[M1] = NodeCopy(M1, (seen(ACKS[0], 2), seen(ACKS[1], 3), seen(ACKS[2], None)), CHAIN)
    report = check_history(ACKS, copies, host=HOST)
    assert report.lost == 1 and report.pending_at_end == 1


def test_a_post_stored_twice_is_duplicated():
    copies = clean()
    copies[HOST] = NodeCopy(HOST, (*copies[HOST].messages, seen(ACKS[1], 5, event_id="$again")), CHAIN)
    report = check_history(ACKS, copies, host=HOST)
    assert report.duplicated == 1 and report.duplicated_by_node[HOST] == 1
    assert report.id_mismatch == 1  # the second copy is not the event the author was told about


def test_posts_sequenced_against_their_acknowledgement_order_are_reordered_per_author():
    copies = clean()
    swapped = (seen(ACKS[0], 4), seen(ACKS[1], 3), seen(ACKS[2], 2))
    copies[HOST] = NodeCopy(HOST, swapped, CHAIN)
    report = check_history(ACKS, copies, host=HOST)
    assert report.reordered_per_author == {BOB: 0, ALICE: 1}
    assert report.reordered == 1 and not report.safe


def test_a_member_whose_chain_differs_from_the_hosts_has_diverged():
    copies = clean()
    copies[M2] = clean_copy(M2, ChainCopy(4, "bb" * 32, ("$c", "$e1", "$e2", "$other")))
    copies[M1] = clean_copy(M1, ChainCopy(3, "cc" * 32, ("$c", "$e1", "$e2")))
    report = check_history(ACKS, copies, host=HOST)
    assert report.diverged == 2 and sorted(report.diverged_nodes) == [M1, M2]


def test_failed_shown_for_a_sequenced_post_is_counted_but_not_for_a_pending_one():
    copies = clean()
    copies[M1] = NodeCopy(M1, (seen(ACKS[0], 2, delivery={HOST: "failed"}), seen(ACKS[1], 3),
                               seen(ACKS[2], 4, delivery={HOST: "delivered"})), CHAIN)
    report = check_history(ACKS, copies, host=HOST)
    assert report.failed_shown == 1 and "failed" in report.examples["failed_shown"][0]
    copies[M1] = NodeCopy(M1, (seen(ACKS[0], None, delivery={HOST: "failed"}), seen(ACKS[1], 3),
                               seen(ACKS[2], 4)), CHAIN)
    assert check_history(ACKS, copies, host=HOST).failed_shown == 0  # refused and shown pending: honest


def test_a_present_post_nobody_acknowledged_is_a_stray_unless_the_soak_gave_up_on_it():
    extra = ack(ALICE, 2, "$e4", 4.0)
    copies = {s: NodeCopy(s, (*c.messages, seen(extra, 5)), c.chain) for s, c in clean().items()}
    assert check_history(ACKS, copies, host=HOST).unacknowledged_present == 1
    assert check_history(ACKS, copies, host=HOST, unacknowledged_ok=[extra.body]).unacknowledged_present == 0
