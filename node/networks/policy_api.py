"""Admin routes for the node's policy: node-wide, the partners default, and per partner."""

from __future__ import annotations

from aiohttp import web

from node.federation.policy import NodePolicy, PartnerPolicy
from node.http.auth import current_admin
from node.http.io import read_body, respond
from node.http.openapi import Endpoint
from node.networks.policy import PartnerPolicyOut, PolicyOut, PolicyService
from node.networks.retention import RetentionOut, RetentionService

__all__ = ["policy_admin_endpoints"]


def policy_admin_endpoints(service: PolicyService, retention: RetentionService) -> list[Endpoint]:
    async def retain(request: web.Request) -> web.Response:
        return respond(await retention.run(actor=current_admin(request)))

    async def show(request: web.Request) -> web.Response:
        return respond(await service.show())

    async def set_node(request: web.Request) -> web.Response:
        policy = await read_body(request, NodePolicy)
        return respond(await service.set_node(policy, actor=current_admin(request)))

    async def set_default(request: web.Request) -> web.Response:
        policy = await read_body(request, PartnerPolicy)
        return respond(await service.set_default_partner(policy, actor=current_admin(request)))

    async def partner(request: web.Request) -> web.Response:
        return respond(await service.partner(request.match_info["server"]))

    async def set_partner(request: web.Request) -> web.Response:
        policy = await read_body(request, PartnerPolicy)
        return respond(await service.set_partner(request.match_info["server"], policy, actor=current_admin(request)))

    async def reset_partner(request: web.Request) -> web.Response:
        return respond(await service.reset_partner(request.match_info["server"], actor=current_admin(request)))

    p = "/v1/policy/partners/{server}"
    return [
        Endpoint("GET", "/v1/policy", show, "The node's policy: node-wide, the partners default, each partner's",
                 response=PolicyOut),
        Endpoint("PUT", "/v1/policy/node", set_node, "Replace the node-wide policy (invites); in force at once",
                 body=NodePolicy, response=PolicyOut),
        Endpoint("PUT", "/v1/policy/partners", set_default, "Replace the policy of partners without their own",
                 body=PartnerPolicy, response=PolicyOut),
        Endpoint("GET", p, partner, "The policy that applies to one partner, and where it comes from",
                 response=PartnerPolicyOut),
        Endpoint("PUT", p, set_partner, "Replace one partner's policy; in force at once", body=PartnerPolicy,
                 response=PartnerPolicyOut),
        Endpoint("POST", "/v1/retention/run", retain,
                 "Apply the node's retention now: messages of networks closed long enough ago are kept as stubs",
                 response=RetentionOut),
        Endpoint("DELETE", p, reset_partner, "Drop one partner's own policy: the partners default applies",
                 response=PartnerPolicyOut),
    ]
