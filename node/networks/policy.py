"""The operator's side of policy: read it and change it. Each change takes effect with the next
event or invite (the enforcing code reads the rows each time: `node.federation.policy`) and is
audited with what it was before."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from node.basics.clock import Clock
from node.federation.policy import (
    DEFAULT_PARTNER_SCOPE,
    NODE_SCOPE,
    NodePolicy,
    PartnerPolicy,
    node_policy,
    partner_policy,
    partner_scope,
)
from storage.storage import Storage

__all__ = ["PartnerPolicyOut", "PolicyOut", "PolicyService"]

log = logging.getLogger(__name__)


class PartnerPolicyOut(BaseModel):
    server: str
    policy: PartnerPolicy
    source: str = Field(description='where it comes from: "own" (set for this partner), "default" (the '
                                    'partners default) or "built-in"')


class PolicyOut(BaseModel):
    node: NodePolicy
    blocked: list[str] = Field(description="servers blocked on this node (`agentnet block`): nothing in, nothing out")
    default_partner: PartnerPolicy = Field(description="for every partner without a policy of its own")
    partners: list[PartnerPolicyOut] = Field(description="partners with a policy of their own")


class PolicyService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def show(self) -> PolicyOut:
        async with self._storage.network_transaction(read_only=True) as tx:
            rows = {r.scope: r for r in await tx.policies.all()}
            blocked = sorted(p.server for p in await tx.peers.all() if p.status == "blocked")
            node = await node_policy(tx)
        default = rows.get(DEFAULT_PARTNER_SCOPE)
        partners = [PartnerPolicyOut(server=scope.removeprefix("partner:"),
                                     policy=PartnerPolicy.model_validate(row.settings), source="own")
                    for scope, row in rows.items() if scope.startswith("partner:") and scope != DEFAULT_PARTNER_SCOPE]
        return PolicyOut(node=node, blocked=blocked, partners=partners,
                         default_partner=PartnerPolicy.model_validate(default.settings) if default else PartnerPolicy())

    async def partner(self, server: str) -> PartnerPolicyOut:
        async with self._storage.network_transaction(read_only=True) as tx:
            policy, scope = await partner_policy(tx, server)
        source = "built-in" if scope is None else "default" if scope == DEFAULT_PARTNER_SCOPE else "own"
        return PartnerPolicyOut(server=server, policy=policy, source=source)

    async def set_node(self, policy: NodePolicy, *, actor: str) -> PolicyOut:
        await self._put(NODE_SCOPE, policy.model_dump(mode="json"), actor=actor, action="policy.node", partner=None)
        return await self.show()

    async def set_default_partner(self, policy: PartnerPolicy, *, actor: str) -> PolicyOut:
        await self._put(DEFAULT_PARTNER_SCOPE, policy.model_dump(mode="json"), actor=actor,
                        action="policy.default_partner", partner=None)
        return await self.show()

    async def set_partner(self, server: str, policy: PartnerPolicy, *, actor: str) -> PartnerPolicyOut:
        await self._put(partner_scope(server), policy.model_dump(mode="json"), actor=actor, action="policy.partner",
                        partner=server)
        return await self.partner(server)

    async def reset_partner(self, server: str, *, actor: str) -> PartnerPolicyOut:
        await self._put(partner_scope(server), None, actor=actor, action="policy.partner_reset", partner=server)
        return await self.partner(server)

    async def _put(self, scope: str, settings: dict[str, Any] | None, *, actor: str, action: str,
                   partner: str | None) -> None:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            before = (await tx.policies.find(scope)).get(scope)
            if settings is None:
                await tx.policies.delete(scope)
            else:
                await tx.policies.put(scope, settings, now=now, by=actor)
            await tx.audit.record(actor=actor, action=action, target=scope, now=now, partner=partner,
                                  detail={"before": before.settings if before else None, "after": settings})
        log.info("policy %s changed by %s: %s", scope, actor, settings if settings is not None else "reset")
