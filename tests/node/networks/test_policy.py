"""The operators' policy between two real nodes over TLS: each switch in both positions, the
refusal named to the partner, nothing stored, and every change audited."""

from __future__ import annotations

from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout


async def _events(node: ClusterNode) -> int:
    return (await node.admin("GET", f"/v1/networks/{NETWORK}"))["head_seq"]


async def _post(node: ClusterNode, token: str, body: str) -> dict:
    return await node.client(token, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages", {"body": body},
                             expect=201)


async def _delivery(node: ClusterNode, token: str, event_id: str) -> dict:
    page = await node.client(token, "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages?limit=200")
    return next(m for m in page["messages"] if m["id"] == event_id)


async def _refused_by_host(globex: ClusterNode, token: str, event_id: str) -> str:
    """The host's refusal as the author's node shows it, once it has come back."""
    async def failed() -> str | None:
        message = await _delivery(globex, token, event_id)
        if (message["delivery"] or {}).get(ACME) != "failed":
            return None
        audit = (await globex.admin("GET", f"/v1/audit?action=delivery.refused&partner={ACME}"))["items"]
        return next((e["detail"]["error"] for e in audit if e["detail"]["event"] == event_id), None)

    return await eventually(failed)


async def _sequenced(node: ClusterNode, token: str, event_id: str) -> bool:
    return (await _delivery(node, token, event_id))["seq"] is not None


async def test_a_partner_s_agents_allowed_then_refused_then_allowed(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    allowed = await _post(globex, tokens["delivery"], "agents are welcome")
    await eventually(lambda: _sequenced(globex, tokens["delivery"], allowed["id"]))

    await acme.admin("PUT", f"/v1/policy/partners/{GLOBEX}", {"agents": False})
    head = await _events(acme)
    refused = await _post(globex, tokens["delivery"], "an agent writes again")
    error = await _refused_by_host(globex, tokens["delivery"], refused["id"])
    assert "policy_refused" in error and "agents" in error
    person = await _post(globex, tokens["sam"], "a person may still write")  # people are not touched
    await eventually(lambda: _sequenced(globex, tokens["sam"], person["id"]))
    assert await _events(acme) == head + 1  # the person's message only
    bodies = [m["body"] for m in (await acme.client(tokens["ops"], "GET",
                                                     f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"))["messages"]]
    assert "an agent writes again" not in bodies and "a person may still write" in bodies

    await acme.admin("DELETE", f"/v1/policy/partners/{GLOBEX}")
    again = await _post(globex, tokens["delivery"], "welcome back")
    await eventually(lambda: _sequenced(globex, tokens["delivery"], again["id"]))

    audit = (await acme.admin("GET", f"/v1/audit?action=policy.&partner={GLOBEX}"))["items"]
    assert [e["action"] for e in audit] == ["policy.partner_reset", "policy.partner"]
    assert audit[1]["detail"] == {"before": None, "after": {
        "agents": False, "max_message_chars": 16384, "max_events_per_minute": None, "threads": "auto", "files": True,
        "max_file_bytes": 25 * 1024 * 1024, "file_types": None}}


async def test_attaching_an_agent_is_refused_when_the_partner_may_not_have_agents(pair):
    acme, globex = pair
    await open_rollout(acme, globex)
    await globex.create("agent", "helper", "Helper")
    await acme.admin("PUT", "/v1/policy/partners", {"agents": False})  # the default for every partner
    assert (await acme.admin("GET", f"/v1/policy/partners/{GLOBEX}"))["source"] == "default"
    head = await _events(acme)
    await globex.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "agent:helper"})

    async def refused() -> bool:
        peers = (await globex.admin("GET", "/v1/peers"))["items"]
        return any("agents_not_allowed" in str(p) for p in peers) or bool(
            (await globex.admin("GET", f"/v1/audit?action=delivery.refused&partner={ACME}"))["items"])

    await eventually(refused)
    assert await _events(acme) == head
    assert "agent:helper@globex.example" not in [p["id"] for p in (await acme.admin(
        "GET", f"/v1/networks/{NETWORK}"))["participants"]]


async def test_the_longest_message_a_partner_may_send(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await acme.admin("PUT", f"/v1/policy/partners/{GLOBEX}", {"max_message_chars": 20})
    short = await _post(globex, tokens["sam"], "x" * 20)
    await eventually(lambda: _sequenced(globex, tokens["sam"], short["id"]))
    long = await _post(globex, tokens["sam"], "x" * 21)
    error = await _refused_by_host(globex, tokens["sam"], long["id"])
    assert "message_too_long" in error and "at most 20 characters" in error
    # Acme's own people are not Acme's partner: the limit is not theirs.
    own = await _post(acme, tokens["alex"], "y" * 100)
    assert own["seq"] is not None


async def test_invites_refused_then_accepted_automatically(pair):
    acme, globex = pair
    await acme.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Rollout"}, expect=201)
    await globex.admin("PUT", "/v1/policy/node", {"accept_invites": False})
    refused = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                               {"server": GLOBEX, "endpoint": globex.endpoint}, expect=502)
    assert "policy_refused" in refused["error"]["message"] and "does not accept invites" in refused["error"]["message"]
    assert (await globex.admin("GET", "/v1/invites"))["items"] == []  # nothing kept on either side
    assert (await acme.admin("GET", "/v1/invites"))["items"] == []
    (entry,) = (await globex.admin("GET", "/v1/audit?action=invite.refused"))["items"]
    assert entry["partner"] == ACME and entry["network"] == NETWORK

    await globex.admin("PUT", "/v1/policy/node", {"accept_invites": False, "auto_accept": [ACME]})
    await acme.admin("POST", f"/v1/networks/{NETWORK}/invites", {"server": GLOBEX, "endpoint": globex.endpoint},
                     expect=201)

    async def joined() -> bool:
        networks = (await globex.admin("GET", "/v1/networks"))["items"]
        return any(n["name"] == NETWORK and n["members"].get(GLOBEX) == "member" for n in networks)

    await eventually(joined)
    accepted = (await globex.admin("GET", "/v1/audit?action=invite.accept"))["items"]
    assert [e["actor"] for e in accepted] == ["policy:auto_accept"]


async def test_invites_wait_for_an_operator_by_default(pair):
    acme, globex = pair
    await acme.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Rollout"}, expect=201)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/invites", {"server": GLOBEX, "endpoint": globex.endpoint},
                     expect=201)
    (pending,) = (await globex.admin("GET", "/v1/invites"))["items"]
    assert pending["status"] == "pending"
    assert (await globex.admin("GET", "/v1/networks"))["items"] == []


async def test_bad_policy_is_refused_and_changes_nothing(pair):
    acme, _ = pair
    for path, body in (("/v1/policy/node", {"accept_invites": "maybe"}),
                       ("/v1/policy/node", {"auto_accept": ["not a server"]}),
                       ("/v1/policy/partners", {"max_message_chars": 0}),
                       (f"/v1/policy/partners/{GLOBEX}", {"agents": False, "faxes": True})):
        answer = await acme.admin("PUT", path, body, expect=422)
        assert answer["error"]["code"] == "invalid_request"
    assert (await acme.admin("GET", "/v1/policy"))["partners"] == []
    assert (await acme.admin("GET", "/v1/audit?action=policy."))["items"] == []
    bad_path = await acme.admin("GET", "/v1/policy/partners/not_a_server", expect=422)
    assert "must be a server name" in bad_path["error"]["message"]


async def test_invites_from_a_refused_server_are_refused_then_allowed(pair):
    acme, globex = pair
    await acme.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Rollout"}, expect=201)
    node = (await globex.admin("GET", "/v1/policy"))["node"]
    await globex.admin("PUT", "/v1/policy/node", {**node, "refuse_invites_from": [ACME]})
    refused = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                               {"server": GLOBEX, "endpoint": globex.endpoint}, expect=502)
    assert "policy_refused" in refused["error"]["message"] and f"invites from {ACME}" in refused["error"]["message"]
    assert (await globex.admin("GET", "/v1/invites"))["items"] == []
    assert [e["action"] for e in (await globex.admin("GET", "/v1/audit?action=invite."))["items"]] == [
        "invite.refused"]
    clash = await globex.admin("PUT", "/v1/policy/node", {**node, "refuse_invites_from": [ACME], "auto_accept": [ACME]},
                               expect=422)
    assert "both accepted automatically and refused" in str(clash)
    await globex.admin("PUT", "/v1/policy/node", {**node, "refuse_invites_from": []})
    await acme.admin("POST", f"/v1/networks/{NETWORK}/invites", {"server": GLOBEX, "endpoint": globex.endpoint},
                     expect=201)
    assert [i["status"] for i in (await globex.admin("GET", "/v1/invites"))["items"]] == ["pending"]


async def test_a_partner_s_rate_limit_holds_its_events_back_then_lets_them_through(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await acme.admin("PUT", f"/v1/policy/partners/{GLOBEX}", {"max_events_per_minute": 12})  # 1 per 5 s, bursts of 12
    first = [await _post(globex, tokens["sam"], f"within the limit {i}") for i in range(12)]
    for posted in first:
        await eventually(lambda posted=posted: _sequenced(globex, tokens["sam"], posted["id"]))
    over = await _post(globex, tokens["sam"], "one too many")

    async def held_back() -> bool:
        peers = (await globex.admin("GET", "/v1/peers"))["items"]
        return any("this company's limit for it: 12 a minute" in (p["last_error"] or "") for p in peers)

    await eventually(held_back)
    assert not await _sequenced(globex, tokens["sam"], over["id"])
    await eventually(lambda: _sequenced(globex, tokens["sam"], over["id"]), timeout=30)  # the bucket refills
    # Without a limit of its own, the same burst goes through at once.
    await acme.admin("DELETE", f"/v1/policy/partners/{GLOBEX}")
    burst = [await _post(globex, tokens["sam"], f"no limit {i}") for i in range(13)]
    for posted in burst:
        await eventually(lambda posted=posted: _sequenced(globex, tokens["sam"], posted["id"]), timeout=5)
