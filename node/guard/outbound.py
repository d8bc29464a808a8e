"""The outbound guard: every text this company's people, agents and operators put into a
shared network runs through it before an event is signed, so a blocked text never reaches the
outbox, let alone a peer.

Order: the rules (`node.guard.rules`: secrets, the operator's patterns, private terms), then
the node's own private content (`node.guard.private_index`), then, unless something already
blocks, the judge (`node.guard.judge`). Any `block` refuses the text with 403
`outbound_blocked` naming the rules; `redact` replaces what matched and the author is shown
the text as sent; `flag` lets it through and lists it for an operator to review.

Every decision other than a plain allow is audited (`guard.blocked`, `guard.redacted`,
`guard.flagged`, `guard.judge_failed`), with the rules and, for private content, which item
matched; the text itself is not copied into the audit log.

The index of private content is built on first use and kept current by reading the highest
ids of knowledge items, private threads and private messages (one indexed lookup each): what is
new is added. That read, and the settings', happen at the first check after anything in this
process changed them (`touch`), or after `_FRESH_S`. Whatever deletes private text calls
`forget`, and the next check builds the index again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from node.basics.clock import Clock
from node.basics.errors import OutboundBlocked
from node.guard.judge import Judge, JudgeResult
from node.guard.private_index import PrivateIndex, build_index
from node.guard.rules import CompiledRules, Finding, GuardPolicy
from storage.storage import Storage, Transaction

__all__ = ["GUARD_SCOPE", "OutboundGuard", "Verdict", "guard_policy", "refusal"]

log = logging.getLogger(__name__)

GUARD_SCOPE = "guard"
# How long what the guard read (its settings, the heads of private content) is taken as current
# when nothing in this process said it changed: a post under load then reads nothing. What this
# process changes (settings, knowledge, private threads and messages) calls `touch` and counts
# at once; a change made elsewhere (another process on the same database) within this long.
_FRESH_S = 1.0
_BATCH = 1_000
# Text files up to this size are read whole by the guard (a few hundred milliseconds at most);
# a larger one is judged by its name only and flagged (`file_not_scanned`) for an operator to
# review. Binary files are judged by name: operators who need more restrict file types per partner.
MAX_GUARDED_FILE_BYTES = 2 * 1024 * 1024
# Private content found in one text: enough for the operator to see where it came from.
_MAX_PRIVATE_HITS = 5


@dataclass(frozen=True, slots=True)
class Verdict:
    text: str  # what may be sent: the original, or with redactions
    findings: list[Finding] = field(default_factory=list)
    judge: JudgeResult | None = None

    def rules(self, action: str) -> list[str]:
        return sorted({f.rule for f in self.findings if f.action == action})

    @property
    def needs_record(self) -> bool:
        return bool(self.findings) or (self.judge is not None and self.judge.failed)


async def guard_policy(tx: Transaction) -> tuple[GuardPolicy, int]:
    """The guard's settings and when they last changed (0: never set, the defaults)."""
    found = (await tx.policies.find(GUARD_SCOPE)).get(GUARD_SCOPE)
    return (GuardPolicy.model_validate(found.settings), found.updated_at) if found else (GuardPolicy(), 0)


@dataclass(frozen=True, slots=True)
class _Indexed:
    heads: tuple[int, int, int] = (0, 0, 0)  # highest knowledge item, private thread, private message ids
    settings: tuple[int, float, int] = (0, 0.0, 0)


class OutboundGuard:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._lock = asyncio.Lock()
        self._compiled: tuple[dict | None, GuardPolicy, CompiledRules, Judge | None] | None = None
        self._index: PrivateIndex | None = None
        self._indexed = _Indexed()
        self._fresh_until = 0.0  # monotonic: until then, the settings and the index are taken as read

    async def check(self, *, author: str, network: str, thread: str | None, field: str, text: str) -> Verdict:
        """What may be sent of `text`, or OutboundBlocked (audited) if nothing may."""
        verdict = await self.evaluate(author=author, network=network, thread=thread, field=field, text=text)
        blocked = verdict.rules("block")
        if blocked:
            async with self._storage.transaction() as tx:
                await self._audit(tx, "guard.blocked", verdict, author=author, network=network, thread=thread,
                                  field=field, event_id=None)
            raise OutboundBlocked(refusal(field, verdict), rules=blocked)
        return verdict

    async def check_file(self, *, author: str, network: str, thread: str | None, name: str, data: bytes) -> Verdict:
        """`check` for a file: its name, and its text when it is UTF-8 (whatever type it claims,
        so a secret labelled application/octet-stream is still read). A file cannot be redacted:
        what a redact rule matches in one blocks it."""
        text, unscanned = name, False
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # binary: its name is what the guard can read
        else:
            unscanned = len(data) > MAX_GUARDED_FILE_BYTES
            text = name if unscanned else name + "\n" + decoded
        verdict = await self.check(author=author, network=network, thread=thread, field="file", text=text)
        if unscanned:
            verdict = replace(verdict, findings=[*verdict.findings, Finding("file_not_scanned", "flag")])
        redacted = verdict.rules("redact")
        if redacted:
            async with self._storage.transaction() as tx:
                await self._audit(tx, "guard.blocked", verdict, author=author, network=network, thread=thread,
                                  field="file", event_id=None)
            raise OutboundBlocked(f"the file {name} was not sent: it holds what this company's outbound guard "
                                  f"redacts ({', '.join(redacted)}), and a file cannot be redacted; take that "
                                  "content out and upload it again", rules=redacted)
        return verdict

    async def evaluate(self, *, author: str, network: str, thread: str | None, field: str, text: str) -> Verdict:
        """The guard's verdict on `text`, acting on nothing (`check` does; operators dry-run this)."""
        policy, rules, judge, index = await self._prepare()
        if not policy.enabled:
            return Verdict(text)
        sent, findings = rules.apply(text)
        if index is not None:
            findings += [Finding("private_content", policy.private_content, hit.source)
                         for hit in index.match(text)[:_MAX_PRIVATE_HITS]]
        answer = None
        if judge is not None and not any(f.action == "block" for f in findings):
            answer = await judge.decide({"author": author, "network": network, "thread": thread, "field": field,
                                         "text": sent, "findings": sorted({f.rule for f in findings})})
            if answer.decision != "allow":
                findings.append(Finding("judge", answer.decision))
        return Verdict(sent, findings, answer)

    async def record(self, tx: Transaction, verdict: Verdict, *, author: str, network: str, thread: str | None,
                     field: str, event_id: str) -> None:
        """In the transaction that authored the event: audit what the guard did to it, and list a
        flagged one for review. Safe to run again (it only writes)."""
        if not verdict.needs_record:
            return
        if verdict.rules("redact"):
            await self._audit(tx, "guard.redacted", verdict, author=author, network=network, thread=thread,
                              field=field, event_id=event_id)
        flagged = verdict.rules("flag")
        if flagged:
            await tx.guard_flags.add(author=author, network=network, thread=thread, event_id=event_id,
                                     rules=flagged, now=self._clock.now_ms())
            await self._audit(tx, "guard.flagged", verdict, author=author, network=network, thread=thread,
                              field=field, event_id=event_id)
        if verdict.judge is not None and verdict.judge.failed:
            await self._audit(tx, "guard.judge_failed", verdict, author=author, network=network, thread=thread,
                              field=field, event_id=event_id)

    async def _audit(self, tx: Transaction, action: str, verdict: Verdict, *, author: str, network: str,
                     thread: str | None, field: str, event_id: str | None) -> None:
        detail: dict[str, Any] = {"field": field, "findings": [
            {"rule": f.rule, "action": f.action, **({"source": f.source} if f.source else {})}
            for f in verdict.findings]}
        if verdict.judge is not None:
            detail["judge"] = {"decision": verdict.judge.decision, "reason": verdict.judge.reason}
        if event_id is not None:
            detail["event"] = event_id
        await tx.audit.record(actor=author, action=action, now=self._clock.now_ms(),
                              target=f"{network}:{thread}" if thread else network, network=network, detail=detail)

    def touch(self) -> None:
        """Settings or private content changed through this process: read them again at the next
        check (anything else is read again within `_FRESH_S`)."""
        self._fresh_until = 0.0

    async def _prepare(self) -> tuple[GuardPolicy, CompiledRules, Judge | None, PrivateIndex | None]:
        async with self._lock:
            if self._compiled is not None and time.monotonic() < self._fresh_until:
                _, policy, rules, judge = self._compiled
                return policy, rules, judge, self._index
            self._fresh_until = time.monotonic() + _FRESH_S
            async with self._storage.read_transaction() as tx:
                row = (await tx.policies.find(GUARD_SCOPE)).get(GUARD_SCOPE)
                settings = row.settings if row is not None else None
                if self._compiled is None or self._compiled[0] != settings:  # validated and compiled once
                    policy = GuardPolicy.model_validate(settings) if settings is not None else GuardPolicy()
                    judge = Judge(policy.judge) if policy.judge is not None else None
                    self._compiled = (settings, policy, CompiledRules(policy), judge)
                _, policy, rules, judge = self._compiled
                if not policy.enabled or policy.private_content == "off":
                    self._index = None
                    return policy, rules, judge, None
                await self._sync(tx, policy)
            return policy, rules, judge, self._index

    async def _sync(self, tx: Transaction, policy: GuardPolicy) -> None:
        heads = await tx.private_threads.private_heads()
        settings = (policy.min_shared, policy.threshold, policy.enough_shared)
        rebuild = self._index is None or settings != self._indexed.settings
        seen = _Indexed() if rebuild else self._indexed
        if seen.heads == heads and not rebuild:
            return
        texts: list[tuple[str, str, bool]] = []  # (source, text, is a title)
        if heads[1] != seen.heads[1]:
            texts += [(f"private-thread:{name}", title, True) for _, name, title in await tx.private_threads.titles()]
        after = seen.heads[0]
        while after < heads[0] and (batch := await tx.knowledge.texts_after(after, limit=_BATCH)):
            for item_id, title, body in batch:
                texts += [(f"knowledge:{item_id}", title, True), (f"knowledge:{item_id}", body, False)]
            after = batch[-1][0]
        after = seen.heads[2]
        while after < heads[2] and (messages := await tx.private_threads.texts_after(after, limit=_BATCH)):
            texts += [(f"private-message:{message_id}", body, False) for message_id, _, body in messages]
            after = messages[-1][0]
        if rebuild:
            # Seconds for 10,000 items (bench/outbound_guard.py): in a thread, so the node's loop
            # keeps serving meanwhile; posts wait for the lock.
            self._index = await asyncio.to_thread(build_index, texts, min_shared=policy.min_shared,
                                                  threshold=policy.threshold, enough_shared=policy.enough_shared)
        else:
            assert self._index is not None
            for source, text, is_title in texts:
                (self._index.add_phrase if is_title else self._index.add)(source, text)
        self._indexed = _Indexed(heads, settings)

    def forget(self) -> None:
        """Something private was deleted or changed: build the index again at the next check."""
        self._index = None
        self.touch()


_KINDS = {"knowledge": "a knowledge item", "private-thread": "a private thread's title",
          "private-message": "a private thread's message"}


def refusal(field: str, verdict: Verdict) -> str:
    """The author's error: the rules and kinds of private content, never the matched text."""
    reasons = []
    for f in verdict.findings:
        if f.action != "block":
            continue
        if f.rule == "private_content" and f.source:
            reasons.append(f"it repeats {_KINDS.get(f.source.split(':', 1)[0], 'private content')} of this company")
        elif f.rule == "judge" and verdict.judge is not None:
            reasons.append(f"the company's judge refused it ({verdict.judge.reason or 'no reason given'})")
        else:
            reasons.append(f"rule {f.rule}")
    unique = list(dict.fromkeys(reasons))
    return (f"the {field} was not sent: this company's outbound guard blocked it ({'; '.join(unique)}); "
            "take that content out and send it again, or ask an operator to review the guard's rules")
