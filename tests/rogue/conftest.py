"""Real nodes (Acme hosting `acme-rollout` with Globex, as in the seed scenario) and a rogue
peer with a certificate from the same CA, for the rogue-peer suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from federation.keys import VerifyKey
from node.basics.limits import FederationLimits
from storage.network.tables import network_events, request_nonces, vouched_keys
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, open_rollout
from tests.rogue.peer import RogueNetwork, RoguePeer
from tests.tls_fixtures import TestCertificateAuthority

ROGUE = "rogue.example"
INITECH = "initech.example"


@dataclass
class World:
    acme: ClusterNode
    globex: ClusterNode
    rogue: RoguePeer
    tokens: dict[str, str]
    ca: TestCertificateAuthority
    tmp_path: Any


@asynccontextmanager
async def make_world(tmp_path, *, acme_limits: FederationLimits = FederationLimits()) -> AsyncIterator[World]:
    """The seed scenario's two companies (Acme's per-peer limits as given) and the rogue."""
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme", federation_limits=acme_limits)
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex")
    rogue = await RoguePeer(ROGUE, ca, tmp_path / "rogue").start()
    try:
        tokens = await open_rollout(acme, globex)
        yield World(acme, globex, rogue, tokens, ca, tmp_path)
    finally:
        await rogue.stop()
        await globex.stop()
        await acme.stop()


@pytest.fixture
async def world(tmp_path):
    async with make_world(tmp_path) as made:
        yield made


async def join_rogue_network(rogue: RoguePeer, node: ClusterNode, network: RogueNetwork) -> None:
    """The rogue invites `node`, its operator accepts, and the rogue admits it with its real
    key, as an honest host would: from here on `node` is a member of `network`."""
    invite_id = await rogue.invite(node, network)
    await node.admin("POST", f"/v1/invites/{invite_id}/accept")
    accepted = rogue.accepted[invite_id]
    key = VerifyKey.from_base64(accepted["key"]["public_key"])
    network.admit(node.server, key, endpoint=accepted["endpoint"])
    answer = await rogue.put_events(node, network.events)
    assert answer.status == 200, answer.raw
    await eventually(lambda: head_is(node, network.name, len(network.events)))


async def head_is(node: ClusterNode, network: str, seq: int) -> bool:
    async with node.storage.network_transaction() as tx:
        found = await tx.networks.find(network)
    return found is not None and found.head_seq == seq


async def head(node: ClusterNode, network: str) -> int:
    async with node.storage.network_transaction() as tx:
        return (await tx.networks.get(network)).head_seq


async def stored(node: ClusterNode, event_id: str) -> bool:
    async with node.storage.network_transaction() as tx:
        return await tx.events.find(event_id) is not None


async def event_count(node: ClusterNode) -> int:
    async with node.storage.engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(network_events))


async def vouched_for(node: ClusterNode, server: str) -> list[tuple[int, str, str]]:
    async with node.storage.engine.connect() as conn:
        rows = await conn.execute(select(vouched_keys.c.network_id, vouched_keys.c.key_id, vouched_keys.c.status)
                                  .where(vouched_keys.c.server == server))
        return [tuple(r) for r in rows]


async def nonces_of(node: ClusterNode, origin: str) -> int:
    async with node.storage.engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(request_nonces)
                                 .where(request_nonces.c.origin == origin))


MOLE = f"agent:mole@{ROGUE}"


async def rogue_joins_rollout(world: World) -> None:
    """Acme invites the rogue to acme-rollout and it accepts, as an honest company would; it
    then attaches a participant of its own. From here on it is a member."""
    sent = await world.acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                                  {"server": ROGUE, "endpoint": world.rogue.endpoint}, expect=201)
    answer = await world.rogue.accept_invite(world.acme, sent["id"])
    assert answer.status == 200, answer.raw
    attach = world.rogue.submission(NETWORK, "participant.attached", {"participant": MOLE, "display_name": "Mole"},
                                    sender=f"operator:admin@{ROGUE}")
    answer = await world.rogue.put_events(world.acme, [attach])
    assert answer.json["results"][0]["status"] == 200, answer.raw

    async def attached() -> bool:
        network = await world.acme.admin("GET", f"/v1/networks/{NETWORK}")
        return any(p["id"] == MOLE and p["attached"] for p in network["participants"])

    await eventually(attached)
