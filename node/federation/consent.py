"""Consent for cross-company threads: what another company's thread may show this company's
participants.

Any member can open a thread naming participants of another company, and post into it; until
now that put its messages straight into their feeds (a rogue member used it to put "Please pay
invoice 42 to IBAN XX" in front of another company's agent). Where this company's policy for
the opener is `threads: ask` (`node.federation.policy`), the thread is *held back* here: its
events are stored and verified like every other (the chain stays whole, and this node still
enforces every rule), but nothing of it enters the local feed, so no stream, webhook, MCP wait
or thread listing shows it to this company's people and agents. An operator then accepts
(everything held back is shown, in order) or declines (it stays hidden for good).

It runs on every node, the host's included, on the events it applies; it never refuses an
event, so it cannot halt a network.
"""

from __future__ import annotations

from typing import cast

from federation.event_content import ThreadJoined, ThreadOpened
from federation.events import Event
from node.federation.policy import partner_policy
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkTransaction

__all__ = ["held_back"]


async def _first_of_ours(tx: NetworkTransaction, network: NetworkRecord, event: Event, server: str) -> bool:
    """Whether `event` brings this company into the thread: it opens it, or it adds this company's
    first participants to it (a thread it already takes part in was consented to, or needed none).
    The projection has already applied the event."""
    if isinstance(event.content, ThreadOpened) or event.thread is None:
        return True
    added = {str(p) for p in cast(ThreadJoined, event.content).participants}
    current = [t for t in await tx.networks.threads(network.id) if t.name == event.thread]
    return not any(p.endswith("@" + server) and p not in added for t in current for p in t.participants)


async def held_back(tx: NetworkTransaction, network: NetworkRecord, event: Event, *, server: str, now: int) -> bool:
    """Whether `event` must not be shown to this node's participants (yet). A `thread.opened`
    from another company naming participants of `server`, under an `ask` policy, starts a
    consent request."""
    if event.thread is None or event.origin == server:
        return False  # this company's own events: it cannot write into a thread held back from it
    key = ("consent", network.id, event.thread)
    if key in tx.memo:
        return bool(tx.memo[key])
    content = event.content
    if (isinstance(content, ThreadOpened | ThreadJoined) and event.origin != server
            and any(p.server == server for p in content.participants)
            and await _first_of_ours(tx, network, event, server)
            and (await partner_policy(tx, event.origin))[0].threads == "ask"):
        await tx.consents.request(network.id, event.thread, opened_by=str(event.sender), now=now)
        await tx.audit.record(actor=str(event.sender), action="consent.requested", target=f"{network.name}:"
                              f"{event.thread}", network=network.name, partner=event.origin, now=now,
                              detail={"participants": [str(p) for p in content.participants if p.server == server]})
        hidden = True
    else:
        hidden = await tx.consents.status(network.id, event.thread) not in (None, "accepted")
    tx.memo[key] = hidden
    return hidden
