"""The soak's verdict on every node's history, from what the workload was told and what each
node holds. Pure: values in, a report out, so each rule is tested on hand-made histories.

- **Lost**: an acknowledged post that some node does not hold sequenced (missing, or still
  pending at its author's node).
- **Duplicated**: an acknowledged post held more than once by some node (two events with one
  body: a retry stored twice).
- **Reordered**, per author: the author's posts, taken in the order they were acknowledged,
  must have increasing `seq` on the host. Each post whose `seq` is below that of a post
  acknowledged before it counts once.
- **Diverged**: a member whose chain (head `seq`, head hash, event id at each `seq`) differs
  from the host's.
- **"failed" shown**: a post its author sees sequenced while its delivery state names a
  destination as `failed` (issue 12, bug 3).

Also counted, as context: posts acknowledged with an event id other than the one stored
(`id_mismatch`), posts still pending at the end, and posts present that no acknowledgement
names (`unacknowledged_present`: a post the soak gave up on, or a stray).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.soak_db import ChainCopy
from bench.soak_workload import Ack

__all__ = ["HistoryReport", "NodeCopy", "Seen", "check_history"]

# How many examples of each problem the report quotes.
EXAMPLES = 5
BODY_PREFIX = "soak "


@dataclass(frozen=True, slots=True)
class Seen:
    event_id: str
    seq: int | None
    body: str
    sender: str
    delivery: dict[str, str] | None = None  # filled for its author only


@dataclass(frozen=True, slots=True)
class NodeCopy:
    server: str
    messages: tuple[Seen, ...]
    chain: ChainCopy


@dataclass(frozen=True)
class HistoryReport:
    acknowledged: int
    lost: int
    duplicated: int
    reordered: int
    diverged: int
    failed_shown: int
    lost_by_node: dict[str, int]
    duplicated_by_node: dict[str, int]
    reordered_per_author: dict[str, int]
    diverged_nodes: list[str]
    pending_at_end: int
    id_mismatch: int
    unacknowledged_present: int
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered or self.diverged or self.failed_shown)


def check_history(acks: Iterable[Ack], copies: dict[str, NodeCopy], *, host: str,
                  unacknowledged_ok: Iterable[str] = ()) -> HistoryReport:
    """`acks` in the order they came; `unacknowledged_ok`: bodies that may be present without an
    acknowledgement (posts the soak gave up on, or that a node refused)."""
    acks = list(acks)
    examples: dict[str, list[str]] = defaultdict(list)

    def example(kind: str, text: str) -> None:
        if len(examples[kind]) < EXAMPLES:
            examples[kind].append(text)

    held = {server: _by_body(copy.messages) for server, copy in copies.items()}
    lost, duplicated, id_mismatch, pending = set(), set(), 0, 0
    lost_by_node = dict.fromkeys(copies, 0)
    duplicated_by_node = dict.fromkeys(copies, 0)
    for ack in acks:
        for server, bodies in held.items():
            seen = bodies.get(ack.body, [])
            if not any(s.seq is not None for s in seen):
                lost.add(ack.body)
                lost_by_node[server] += 1
                pending += any(s.seq is None for s in seen)
                example("lost", f"{ack.body} on {server} ({'pending' if seen else 'missing'})")
            if len(seen) > 1:
                duplicated.add(ack.body)
                duplicated_by_node[server] += 1
                example("duplicated", f"{ack.body} on {server}: {len(seen)} events")
            if any(s.event_id != ack.event_id for s in seen):
                id_mismatch += 1
                example("id_mismatch", f"{ack.body} on {server}: acknowledged as {ack.event_id}")

    reordered_per_author = _reordered(acks, held.get(host, {}), example)
    diverged = [server for server, copy in copies.items() if server != host and copy.chain != copies[host].chain]
    for server in diverged:
        mine, theirs = copies[server].chain, copies[host].chain
        example("diverged", f"{server} head {mine.head_seq}/{mine.head_hash} vs host {theirs.head_seq}/"
                            f"{theirs.head_hash}")

    failed_shown = 0
    for server, copy in copies.items():
        for shown in copy.messages:
            if shown.seq is not None and shown.delivery and "failed" in shown.delivery.values():
                failed_shown += 1
                example("failed_shown", f"{shown.body} (seq {shown.seq}) on {server}: {shown.delivery}")

    acked = {a.body for a in acks} | set(unacknowledged_ok)
    strays = {body for bodies in held.values() for body in bodies if body not in acked}
    return HistoryReport(
        acknowledged=len(acks), lost=len(lost), duplicated=len(duplicated),
        reordered=sum(reordered_per_author.values()), diverged=len(diverged), failed_shown=failed_shown,
        lost_by_node=lost_by_node, duplicated_by_node=duplicated_by_node,
        reordered_per_author=reordered_per_author, diverged_nodes=diverged, pending_at_end=pending,
        id_mismatch=id_mismatch, unacknowledged_present=len(strays), examples=dict(examples),
    )


def _by_body(messages: Iterable[Seen]) -> dict[str, list[Seen]]:
    bodies: dict[str, list[Seen]] = defaultdict(list)
    for seen in messages:
        if seen.body.startswith(BODY_PREFIX):
            bodies[seen.body].append(seen)
    return dict(bodies)


def _reordered(acks: list[Ack], on_host: dict[str, list[Seen]], example) -> dict[str, int]:
    per_author: dict[str, list[Ack]] = defaultdict(list)
    for ack in acks:
        per_author[ack.author].append(ack)
    counts = {}
    for author, mine in sorted(per_author.items()):
        highest, highest_body, count = 0, "", 0
        for ack in sorted(mine, key=lambda a: a.acked_at):
            seqs = [s.seq for s in on_host.get(ack.body, []) if s.seq is not None]
            if not seqs:
                continue  # lost, counted as such
            if seqs[0] < highest:
                count += 1
                example("reordered", f"{ack.body} at seq {seqs[0]}, after {highest_body} at seq {highest}")
            elif seqs[0] > highest:
                highest, highest_body = seqs[0], ack.body
        counts[author] = count
    return counts
