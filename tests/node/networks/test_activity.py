"""Typing and working indicators across three real nodes over TLS: an agent's "working" reaches
every member (Initech through the host: it never peered with Globex), lapses after its time to
live, is cleared by "idle", is refused in a frozen network, and never enters the history."""

from __future__ import annotations

import asyncio

from tests.cluster import ClusterNode, eventually
from tests.node.federation.test_lifecycle import NETWORK, SERVERS, THREAD, incident

ACME, GLOBEX, INITECH = SERVERS
ACTIVITY = f"/v1/networks/{NETWORK}/threads/{THREAD}/activity"


async def _active(node: ClusterNode, token: str) -> list[tuple[str, str]]:
    return [(a["participant"], a["state"]) for a in (await node.client(token, "GET", ACTIVITY))["items"]]


async def test_an_agent_s_working_indicator_reaches_every_member_and_lapses(three):
    acme, globex, initech = three
    tokens = await incident(three)
    head = (await acme.admin("GET", f"/v1/networks/{NETWORK}"))["head_seq"]
    shown = await globex.client(tokens[GLOBEX], "POST", ACTIVITY, {"state": "working", "ttl_s": 3})
    assert shown["items"][0]["participant"] == f"agent:oncall@{GLOBEX}"
    for node in (acme, initech):
        await eventually(lambda node=node: _active(node, tokens[node.server]))
        assert await _active(node, tokens[node.server]) == [(f"agent:oncall@{GLOBEX}", "working")]
    await initech.client(tokens[INITECH], "POST", ACTIVITY, {"state": "typing"})

    async def both_at_globex() -> bool:
        return len(await _active(globex, tokens[GLOBEX])) == 2

    await eventually(both_at_globex)
    await asyncio.sleep(3.2)  # Globex's lapses on its own everywhere; Initech's (30 s) stays
    for node in three:
        assert await _active(node, tokens[node.server]) == [(f"agent:oncall@{INITECH}", "typing")]
    await initech.client(tokens[INITECH], "POST", ACTIVITY, {"state": "idle"})

    async def cleared(node: ClusterNode) -> bool:
        return await _active(node, tokens[node.server]) == []

    for node in three:
        await eventually(lambda node=node: cleared(node))
    assert (await acme.admin("GET", f"/v1/networks/{NETWORK}"))["head_seq"] == head  # not in the history

    await globex.admin("POST", f"/v1/networks/{NETWORK}/freeze")
    frozen = await globex.client(tokens[GLOBEX], "POST", ACTIVITY, {"state": "working"}, expect=409)
    assert frozen["error"]["code"] == "network_frozen"
    await acme.client(tokens[ACME], "POST", f"/v1/networks/{NETWORK}/threads/nope/activity", {"state": "typing"},
                      expect=404)
    bad = await acme.client(tokens[ACME], "POST", ACTIVITY, {"state": "sleeping"}, expect=422)
    assert bad["error"]["fields"][0]["field"] == "state"
