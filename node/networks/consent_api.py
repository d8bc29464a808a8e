"""Operators' side of consent for cross-company threads (`node.federation.consent`): list the
threads held back, accept one (everything held back reaches the participants, in order) or
decline it (it stays hidden here for good). Each decision is audited."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from node.basics.clock import Clock
from node.basics.errors import Conflict
from node.http.auth import current_admin
from node.http.fields import QueryModel
from node.http.io import read_query, respond
from node.http.openapi import Endpoint
from storage.errors import NotFound
from storage.network.consents import ConsentRecord
from storage.storage import Storage

__all__ = ["consent_admin_endpoints", "consents", "decide_consent"]

_PAGE = 500


class ConsentOut(BaseModel):
    network: str
    thread: str
    opened_by: str = Field(description="the participant or operator of the other company that opened it")
    status: Literal["pending", "accepted", "declined"]
    requested_at: int
    decided_at: int | None
    decided_by: str | None


class ConsentList(BaseModel):
    items: list[ConsentOut]


class ConsentQuery(QueryModel):
    status: Literal["pending", "accepted", "declined", "all"] = "pending"


def _out(record: ConsentRecord) -> ConsentOut:
    return ConsentOut(network=record.network, thread=record.thread, opened_by=record.opened_by,
                      status=record.status,
                      requested_at=record.requested_at, decided_at=record.decided_at, decided_by=record.decided_by)


async def consents(storage: Storage, status: str | None) -> ConsentList:
    """Consent requests by status (None: all)."""
    async with storage.read_transaction() as tx:
        found = await tx.consents.listed(status=status)
    return ConsentList(items=[_out(r) for r in found])


async def decide_consent(storage: Storage, clock: Clock, network: str, thread: str,
                         status: Literal["accepted", "declined"], *, actor: str) -> ConsentOut:
    """Accept or decline a held-back thread (the API's and the console's one way)."""
    now = clock.now_ms()
    async with storage.transaction() as tx:
        record = await tx.consents.find(network, thread)
        if record is None:
            raise NotFound("consent request", f"{network}/{thread}")
        if record.status != "pending":
            raise Conflict(f"{network}/{thread} was already {record.status}")
        network_id = (await tx.networks.get(network)).id
        await tx.consents.decide(network_id, thread, status=status, by=actor, now=now)
        if status == "accepted":  # what was held back reaches the participants now, in order
            after = 0
            while page := await tx.events.in_thread(network_id, thread, after_seq=after, limit=_PAGE,
                                                    include_pending=False):
                for stored in page:
                    await tx.feed_writer.append_network_event(network_id=network_id, thread=thread,
                                                              event_row=stored.row_id, now=now)
                after = page[-1].seq or after
                if len(page) < _PAGE:
                    break
        await tx.audit.record(actor=actor, action=f"consent.{status}", target=f"{network}:{thread}",
                              network=network, partner=record.opened_by.rpartition("@")[2], now=now,
                              detail={"opened_by": record.opened_by})
        decided = await tx.consents.find(network, thread)
    assert decided is not None
    return _out(decided)


def consent_admin_endpoints(storage: Storage, clock: Clock) -> list[Endpoint]:
    async def listed(request: web.Request) -> web.Response:
        query = read_query(request, ConsentQuery)
        return respond(await consents(storage, None if query.status == "all" else query.status))

    def deciding(status: Literal["accepted", "declined"]):
        async def handler(request: web.Request) -> web.Response:
            network, thread = request.match_info["network"], request.match_info["thread"]
            return respond(await decide_consent(storage, clock, network, thread, status,
                                                actor=current_admin(request)))

        return handler

    path = "/v1/consents/{network}/{thread}"
    return [
        Endpoint("GET", "/v1/consents", listed, "Threads other companies opened naming this company's participants, "
                 "held back for an operator's consent", query=ConsentQuery, response=ConsentList),
        Endpoint("POST", path + "/accept", deciding("accepted"),
                 "Accept a held-back thread: its participants here see it, and everything in it so far",
                 response=ConsentOut, errors=(409,)),
        Endpoint("POST", path + "/decline", deciding("declined"),
                 "Decline a held-back thread: nothing of it is ever shown here", response=ConsentOut, errors=(409,)),
    ]
