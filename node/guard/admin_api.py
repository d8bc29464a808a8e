"""Admin routes of the outbound guard: its settings, a dry run, and the review of flagged
messages. Every change is audited; a review says who looked and what they concluded."""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, computed_field

from node.basics.clock import Clock
from node.federation.chain_state import stored_view
from node.guard.outbound import GUARD_SCOPE, OutboundGuard, guard_policy, refusal
from node.guard.rules import GuardPolicy
from node.http.auth import current_admin
from node.http.fields import MAX_PAGE, Cursor, QueryModel, Request, formerly, old_name
from node.http.io import read_body, read_query, respond
from node.http.openapi import Endpoint
from storage.errors import NotFound
from storage.private.guard_flags import GuardFlag
from storage.storage import Storage, Transaction

__all__ = ["Review", "flag_page", "guard_admin_endpoints", "review_flag"]

log = logging.getLogger(__name__)


class GuardCheck(Request):
    text: str = Field(min_length=1, max_length=64 * 1024)


class GuardCheckOut(BaseModel):
    decision: Literal["allow", "block", "redact", "flag"]
    rules: list[str] = Field(description="the rules that matched")
    sources: list[str] = Field(description="private content that matched: e.g. knowledge:12, private-thread:NAME")
    text: str | None = Field(None, description="what would be sent (None when blocked)")
    message: str | None = Field(None, description="what the author would be told when blocked")


class FlagQuery(QueryModel):
    status: Literal["open", "reviewed", "all"] = "open"
    after: Cursor | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class FlagOut(BaseModel):
    id: int
    created_at: int = Field(validation_alias=formerly("created_at", "at"))
    author: str
    network: str
    thread: str | None
    event_id: str
    rules: list[str]
    body: str | None = Field(description="the message as sent, from this node's copy (None if no longer kept)")
    reviewed_at: int | None
    reviewed_by: str | None
    verdict: str | None
    note: str | None

    @computed_field(**old_name("created_at"))  # type: ignore[prop-decorator]
    @property
    def at(self) -> int:
        return self.created_at


class FlagPage(BaseModel):
    items: list[FlagOut]
    next_cursor: str | None


class Review(Request):
    verdict: Literal["ok", "leak"] = Field(description="ok: nothing wrong; leak: it should not have crossed")
    note: str | None = Field(None, max_length=500)


def guard_admin_endpoints(storage: Storage, clock: Clock, guard: OutboundGuard) -> list[Endpoint]:
    async def show(request: web.Request) -> web.Response:
        async with storage.read_transaction() as tx:
            policy, _ = await guard_policy(tx)
        return respond(policy)

    async def replace(request: web.Request) -> web.Response:
        policy = await read_body(request, GuardPolicy)
        actor, now = current_admin(request), clock.now_ms()
        settings = policy.model_dump(mode="json")
        async with storage.transaction() as tx:
            before, _ = await guard_policy(tx)
            await tx.policies.put(GUARD_SCOPE, settings, now=now, by=actor)
            await tx.audit.record(actor=actor, action="policy.guard", target=GUARD_SCOPE, now=now,
                                  detail={"before": before.model_dump(mode="json"), "after": settings})
        guard.touch()
        log.info("outbound guard settings changed by %s", actor)
        return respond(policy)

    async def check(request: web.Request) -> web.Response:
        body = await read_body(request, GuardCheck)
        verdict = await guard.evaluate(author=current_admin(request), network="-", thread=None, field="message",
                                       text=body.text)
        rules = sorted({f.rule for f in verdict.findings})
        sources = [f.source for f in verdict.findings if f.source]
        if verdict.rules("block"):
            return respond(GuardCheckOut(decision="block", rules=rules, sources=sources,
                                         message=refusal("message", verdict)))
        decision = "redact" if verdict.rules("redact") else "flag" if verdict.rules("flag") else "allow"
        return respond(GuardCheckOut(decision=decision, rules=rules, sources=sources, text=verdict.text))

    async def flags(request: web.Request) -> web.Response:
        query = read_query(request, FlagQuery)
        return respond(await flag_page(storage, status=query.status, after=int(query.after or 0), limit=query.limit))

    async def review(request: web.Request) -> web.Response:
        body = await read_body(request, Review)
        return respond(await review_flag(storage, clock, int(request.match_info["flag"]), body,
                                         actor=current_admin(request)))

    return [
        Endpoint("GET", "/v1/policy/guard", show, "The outbound guard's settings", response=GuardPolicy),
        Endpoint("PUT", "/v1/policy/guard", replace, "Replace the outbound guard's settings; in force at once",
                 body=GuardPolicy, response=GuardPolicy),
        Endpoint("POST", "/v1/guard/check", check, "What the outbound guard would do with a text (nothing is sent)",
                 body=GuardCheck, response=GuardCheckOut),
        Endpoint("GET", "/v1/guard/flags", flags, "Messages the outbound guard flagged, oldest first",
                 query=FlagQuery, response=FlagPage),
        Endpoint("POST", "/v1/guard/flags/{flag}/review", review, "Mark a flagged message reviewed",
                 body=Review, response=FlagOut),
    ]


async def flag_page(storage: Storage, *, status: Literal["open", "reviewed", "all"], after: int,
                    limit: int) -> FlagPage:
    """Flagged messages, oldest first (the API's and the console's one way)."""
    async with storage.read_transaction() as tx:
        found = await tx.guard_flags.page(status=status, after_id=after, limit=limit)
        bodies = await _bodies(tx, found)
    return FlagPage(items=[_out(f, bodies.get(f.event_id)) for f in found],
                    next_cursor=str(found[-1].id) if len(found) == limit else None)


async def review_flag(storage: Storage, clock: Clock, flag_id: int, body: Review, *, actor: str) -> FlagOut:
    now = clock.now_ms()
    async with storage.transaction() as tx:
        flag = await tx.guard_flags.get(flag_id)
        if flag is None:
            raise NotFound("flagged message", flag_id)
        await tx.guard_flags.review(flag_id, verdict=body.verdict, note=body.note, by=actor, now=now)
        await tx.audit.record(actor=actor, action="guard.reviewed", target=f"flag:{flag_id}", now=now,
                              network=flag.network, detail={"event": flag.event_id, "verdict": body.verdict,
                                                            "note": body.note})
        reviewed = await tx.guard_flags.get(flag_id)
        assert reviewed is not None
        bodies = await _bodies(tx, [reviewed])
    return _out(reviewed, bodies.get(reviewed.event_id))


async def _bodies(tx: Transaction, flags: list[GuardFlag]) -> dict[str, str]:
    """What each flagged event says, from this node's copy: a message's body or a title."""
    found = {}
    for flag in flags:
        stored = await tx.events.find(flag.event_id)
        if stored is not None:
            content, _ = stored_view(stored.wire)
            text = content.get("body", content.get("title"))
            if isinstance(text, str):
                found[flag.event_id] = text
    return found


def _out(flag: GuardFlag, body: str | None) -> FlagOut:
    return FlagOut(id=flag.id, created_at=flag.at, author=flag.author, network=flag.network, thread=flag.thread,
                   event_id=flag.event_id, rules=flag.rules, body=body, reviewed_at=flag.reviewed_at,
                   reviewed_by=flag.reviewed_by, verdict=flag.verdict, note=flag.note)
