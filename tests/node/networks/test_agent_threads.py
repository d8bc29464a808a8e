"""Agents opening shared threads and adding participants, across three real nodes over TLS,
within the `threads` scope their operator grants; each other company's consent policy still
decides what reaches its people, and the rules refuse what is not allowed on every node."""

from __future__ import annotations

from tests.cluster import ClusterNode, eventually
from tests.node.federation.test_lifecycle import NETWORK, SERVERS, THREAD, incident

ACME, GLOBEX, INITECH = SERVERS
HANDOFF = f"/v1/networks/{NETWORK}/threads/handoff"


async def _threads(node: ClusterNode, token: str) -> list[str]:
    return [t["name"] for t in (await node.client(token, "GET", "/v1/shared-threads"))["items"]]


async def test_an_agent_with_the_threads_scope_opens_a_thread_and_adds_a_participant(three):
    acme, globex, initech = three
    tokens = await incident(three)
    await initech.admin("PUT", f"/v1/policy/partners/{GLOBEX}", {"threads": "ask"})

    # The default token cannot: opening threads names other companies' people, so it is granted.
    refused = await globex.client(tokens[GLOBEX], "POST", f"/v1/networks/{NETWORK}/threads",
                                  {"name": "handoff", "title": "Hand-off", "participants": [f"agent:oncall@{ACME}"]},
                                  expect=403)
    assert refused["error"]["code"] == "insufficient_scope"
    granted = (await globex.admin("POST", "/v1/agents/oncall/tokens",
                                  {"scopes": ["read", "post", "threads"]}))["token"]

    people = await globex.client(granted, "GET", f"/v1/networks/{NETWORK}/participants")
    assert {(p["id"], p["company"], p["kind"]) for p in people["items"]} == {
        (f"agent:oncall@{s}", s, "agent") for s in SERVERS}
    assert people["companies"] == {s: "member" for s in SERVERS} and people["host"] == ACME

    opened = await globex.client(granted, "POST", f"/v1/networks/{NETWORK}/threads",
                                 {"name": "handoff", "title": "Hand-off", "participants": [f"agent:oncall@{ACME}"]},
                                 expect=201)
    assert opened["participants"] == [f"agent:oncall@{GLOBEX}", f"agent:oncall@{ACME}"]
    await eventually(lambda: _has(acme, tokens[ACME], "handoff"))
    await acme.client(tokens[ACME], "POST", f"{HANDOFF}/messages", {"body": "Taking it from here."}, expect=201)
    assert "handoff" not in await _threads(initech, tokens[INITECH])

    # Rules on every node: not attached, already in, and only a participant adds.
    bad = await globex.client(granted, "POST", f"{HANDOFF}/participants",
                              {"participants": [f"agent:ghost@{INITECH}"]}, expect=403)
    assert bad["error"]["reason"] == "participant_not_attached"
    again = await globex.client(granted, "POST", f"{HANDOFF}/participants",
                                {"participants": [f"agent:oncall@{ACME}"]}, expect=403)
    assert again["error"]["reason"] == "already_participant"
    outsider = (await initech.admin("POST", "/v1/agents/oncall/tokens", {"scopes": ["read", "threads"]}))["token"]
    await initech.client(outsider, "POST", f"{HANDOFF}/participants",
                         {"participants": [f"agent:oncall@{INITECH}"]}, expect=404)  # not in it: no such thread

    # Adding Initech's agent: Initech's policy for Globex says ask, so it waits for consent there.
    added = await globex.client(granted, "POST", f"{HANDOFF}/participants",
                                {"participants": [f"agent:oncall@{INITECH}"]}, expect=201)
    assert added["participants"] == [f"agent:oncall@{INITECH}"]

    async def held() -> list:
        return [c for c in (await initech.admin("GET", "/v1/consents"))["items"] if c["thread"] == "handoff"]

    (consent,) = await eventually(held)
    assert consent["status"] == "pending"
    assert "handoff" not in await _threads(initech, tokens[INITECH])
    await initech.admin("POST", f"/v1/consents/{NETWORK}/handoff/accept")
    await eventually(lambda: _has(initech, tokens[INITECH], "handoff"))
    page = await initech.client(tokens[INITECH], "GET", f"{HANDOFF}/messages")
    assert [m["body"] for m in page["messages"]] == ["Taking it from here."]
    await initech.client(tokens[INITECH], "POST", f"{HANDOFF}/messages", {"body": "Initech here."}, expect=201)

    # The host's operators may add too; a member's operators only to threads their company opened.
    await acme.admin("POST", "/v1/agents", {"handle": "lead", "display_name": "Lead"})
    await acme.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "agent:lead"})
    await eventually(lambda: _attached(acme, f"agent:lead@{ACME}"))
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads/handoff/participants",
                     {"participants": [f"agent:lead@{ACME}"]})
    refused = await initech.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/participants",
                                  {"participants": [f"agent:oncall@{INITECH}"]}, expect=403)
    assert refused["error"]["reason"] == "not_thread_owner"
    audit = (await globex.admin("GET", "/v1/audit?action=thread."))["items"]
    assert {e["action"] for e in audit} >= {"thread.open", "thread.add"}


async def _has(node: ClusterNode, token: str, thread: str) -> bool:
    return thread in await _threads(node, token)


async def _attached(node: ClusterNode, participant: str) -> bool:
    network = await node.admin("GET", f"/v1/networks/{NETWORK}")
    return any(p["id"] == participant and p["attached"] for p in network["participants"])
