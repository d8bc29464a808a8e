"""`GET /v1/overview`: what an operator needs at a glance, in one answer (`agentnet status`
shows it): the node's name, version, key and certificate; its people, agents and private
threads; its networks, and whether it can follow each; its peers with queue depth, last error
and next retry; pending invites; and open alerts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, Field, computed_field

from node.basics.clock import Clock
from node.federation.tls import certificate_not_after_ms
from node.http.fields import formerly, old_name
from node.http.io import respond
from node.http.openapi import Endpoint
from node.networks.models import PeerOut
from node.networks.partners import PartnerService
from node.networks.service import NetworkService
from node.workspace.models import StatusOut

__all__ = ["NodeIdentity", "OverviewOut", "overview_builder", "overview_endpoints"]

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """What the running node knows of itself beyond its database."""

    key_id: str
    fingerprint: str
    certificate_file: Path | None  # the federation listener's certificate, read at the first overview


class KeyOut(BaseModel):
    key_id: str
    fingerprint: str = Field(description="read it out to a partner's operator to compare")


class CertificateOut(BaseModel):
    expires_at: int = Field(validation_alias=formerly("expires_at", "not_after"),
                            description="when the federation listener's certificate expires (ms since the epoch)")
    days_left: int

    @computed_field(**old_name("expires_at"))  # type: ignore[prop-decorator]
    @property
    def not_after(self) -> int:
        return self.expires_at


class NetworkSummary(BaseModel):
    name: str
    host: str
    hosted_here: bool
    closed: bool
    members: int
    pending_events: int
    halted: bool = Field(description="this node cannot follow the network (`agentnet network show` says why)")


class OverviewOut(BaseModel):
    node: StatusOut
    key: KeyOut
    certificate: CertificateOut | None
    networks: list[NetworkSummary]
    peers: list[PeerOut]
    pending_invites: int = Field(description="invites to this node that wait for an operator")
    alerts: int


def overview_builder(status: Callable[[], Awaitable[StatusOut]], networks: NetworkService,
                     partners: PartnerService, identity: NodeIdentity,
                     clock: Clock) -> Callable[[], Awaitable[OverviewOut]]:
    """The overview, for the API and the console alike."""
    expiry: list[int | None] = []  # read once, when first asked: the parser is not loaded to serve

    async def overview() -> OverviewOut:
        held = (await networks.list()).items
        invites = await partners.invites()
        if not expiry:
            file = identity.certificate_file
            expiry.append(None if file is None else certificate_not_after_ms(file))
        not_after = expiry[0]
        return OverviewOut(
            node=await status(),
            key=KeyOut(key_id=identity.key_id, fingerprint=identity.fingerprint),
            certificate=None if not_after is None else CertificateOut(
                expires_at=not_after, days_left=(not_after - clock.now_ms()) // _DAY_MS),
            networks=[NetworkSummary(name=n.name, host=n.host, hosted_here=n.hosted_here, closed=n.closed,
                                     members=sum(state == "member" for state in n.members.values()),
                                     pending_events=n.pending_events, halted=n.halted is not None) for n in held],
            peers=(await networks.peers()).items,
            pending_invites=sum(i.direction == "incoming" and i.status == "pending" for i in invites),
            alerts=len((await networks.alerts()).items),
        )

    return overview


def overview_endpoints(overview: Callable[[], Awaitable[OverviewOut]]) -> list[Endpoint]:
    async def answer(_request: web.Request) -> web.Response:
        return respond(await overview())

    return [Endpoint("GET", "/v1/overview", answer, "The node at a glance: identity, networks, peers, invites, "
                     "alerts", response=OverviewOut)]
