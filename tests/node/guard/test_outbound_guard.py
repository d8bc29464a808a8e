"""The outbound guard between two real nodes over TLS: what it blocks never leaves the
author's node (checked on every byte the node sent), redactions and flags reach the partner as
the author was told, the judge decides and fails closed, and every decision is audited."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import GLOBEX, NETWORK, THREAD, open_rollout

PLAYBOOK = ("Globex escalation playbook: if Acme threatens to churn, offer the platinum support tier free "
            "for two quarters and waive the migration fee of 18,500 dollars; never mention the Initech deal.")
REWORDED = ("Quick idea - per our playbook, if acme threatens to churn we could offer the Platinum support "
            "tier FREE for two quarters & waive the migration fee (18.500 dollars). Never mention Initech's deal!")
MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


async def _bodies(node: ClusterNode, token: str) -> list[str]:
    return [m["body"] for m in (await node.client(token, "GET", f"{MESSAGES}?limit=200"))["messages"]]


async def _arrives(node: ClusterNode, token: str, body: str) -> None:
    await eventually(lambda: _has(node, token, body))


async def _has(node: ClusterNode, token: str, body: str) -> bool:
    return body in await _bodies(node, token)


async def _audit(node: ClusterNode, action: str) -> list[dict]:
    return (await node.admin("GET", f"/v1/audit?action={action}"))["items"]


async def test_private_knowledge_reworded_is_blocked_before_any_byte_leaves(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await globex.admin("PUT", "/v1/policy/guard", {"private_content": "block"})
    item = await globex.admin("POST", "/v1/knowledge", {"title": "Escalation playbook for Acme renewals", "body": PLAYBOOK},
                              expect=201)
    sent_before = len(globex.sent)

    refused = await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": REWORDED}, expect=403)
    assert refused["error"]["code"] == "outbound_blocked"
    assert refused["error"]["rules"] == ["private_content"]
    assert "a knowledge item" in refused["error"]["message"] and "Initech" not in refused["error"]["message"]

    # Something allowed goes out next, so the node did send meanwhile; the blocked text did not.
    await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "Wave two starts Monday."}, expect=201)
    await _arrives(acme, tokens["ops"], "Wave two starts Monday.")
    wire = b"".join(globex.sent[sent_before:])
    assert b"Wave two starts Monday." in wire
    for words in (b"Initech", b"platinum", b"Platinum", b"18.500", b"churn"):
        assert words not in wire
    assert not any("Initech" in b for b in await _bodies(globex, tokens["delivery"]))  # nothing kept as pending
    assert not any("Initech" in b for b in await _bodies(acme, tokens["ops"]))

    (entry,) = await _audit(globex, "guard.blocked")
    assert entry["actor"] == f"agent:delivery@{GLOBEX}" and entry["network"] == NETWORK
    assert entry["detail"]["findings"] == [{"rule": "private_content", "action": "block",
                                            "source": f"knowledge:{item['id']}"}]
    assert "Initech" not in str(entry)

    # The same text from a person is blocked too; the knowledge title alone as a phrase as well.
    await globex.client(tokens["sam"], "POST", MESSAGES, {"body": PLAYBOOK}, expect=403)
    await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "see the escalation playbook for Acme renewals"},
                        expect=403)

    # Switched to flag, the same text crosses and waits for an operator's review.
    await globex.admin("PUT", "/v1/policy/guard", {"private_content": "flag"})
    posted = await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": REWORDED}, expect=201)
    await _arrives(acme, tokens["ops"], REWORDED)
    (flag,) = (await globex.admin("GET", "/v1/guard/flags"))["items"]
    assert (flag["event_id"], flag["rules"], flag["body"]) == (posted["id"], ["private_content"], REWORDED)
    reviewed = await globex.admin("POST", f"/v1/guard/flags/{flag['id']}/review", {"verdict": "leak",
                                                                                  "note": "talked to them"})
    assert reviewed["verdict"] == "leak" and reviewed["reviewed_by"].startswith("admin:")
    assert (await globex.admin("GET", "/v1/guard/flags"))["items"] == []
    assert len((await globex.admin("GET", "/v1/guard/flags?status=reviewed"))["items"]) == 1
    assert [e["action"] for e in await _audit(globex, "guard.")][:2] == ["guard.reviewed", "guard.flagged"]

    # Off: nothing is checked against private content.
    await globex.admin("PUT", "/v1/policy/guard", {"private_content": "off"})
    await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "see the escalation playbook for Acme renewals"},
                        expect=201)


async def test_private_threads_are_private_content_too(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await globex.admin("PUT", "/v1/policy/guard", {"private_content": "block"})
    await globex.admin("POST", "/v1/threads", {"name": "renewal-war-room", "title": "Acme renewal war room",
                                               "members": ["person:sam"]})
    line = "Acme procurement is bluffing about the competitor bid; hold the price until Friday at the latest."
    await globex.client(tokens["sam"], "POST", "/v1/threads/renewal-war-room/messages", {"body": line})
    refused = await globex.client(tokens["sam"], "POST", MESSAGES,
                                  {"body": f"Heads up: {line.lower()}"}, expect=403)
    assert "a private thread's message" in refused["error"]["message"]
    refused = await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "From the Acme renewal war-room"},
                                  expect=403)
    assert "a private thread's title" in refused["error"]["message"]


async def test_redact_and_flag_rules_and_built_in_secrets(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await globex.admin("PUT", "/v1/policy/guard", {
        "rules": [{"name": "customer-id", "pattern": r"\bGLX-[0-9]{6}\b", "action": "redact"},
                  {"name": "deal-size", "pattern": r"(?i)\b[0-9]+k\s*(usd|eur)\b", "action": "flag"}],
        "terms": ["Project Nightjar"]})
    posted = await globex.client(tokens["delivery"], "POST", MESSAGES,
                                 {"body": "Customer GLX-004211 is on wave two; budget 40k USD."}, expect=201)
    sent = "Customer [redacted: customer-id] is on wave two; budget 40k USD."
    assert (posted["body"], posted["redacted"]) == (sent, ["customer-id"])  # the author sees what went out
    await _arrives(acme, tokens["ops"], sent)
    assert b"GLX-004211" not in b"".join(globex.sent)
    assert [f["rules"] for f in (await globex.admin("GET", "/v1/guard/flags"))["items"]] == [["deal-size"]]
    assert {e["action"] for e in await _audit(globex, "guard.")} == {"guard.redacted", "guard.flagged"}

    for body, rule in (("the key is AKIAIOSFODNN7EXAMPLE", "secret.aws_access_key"),
                       ("status of project nightjar?", "term")):
        refused = await globex.client(tokens["sam"], "POST", MESSAGES, {"body": body}, expect=403)
        assert refused["error"]["rules"] == [rule] and f"rule {rule}" in refused["error"]["message"]
        assert "AKIA" not in refused["error"]["message"] and "nightjar" not in refused["error"]["message"]

    # Thread titles go through the guard as well.
    refused = await globex.admin("POST", f"/v1/networks/{NETWORK}/threads", {
        "name": "nightjar", "title": "Project Nightjar sync", "participants": [f"person:sam@{GLOBEX}"]},
        expect=403)
    assert refused["error"]["code"] == "outbound_blocked"
    assert b"Nightjar sync" not in b"".join(globex.sent)


async def test_the_judge_decides_and_fails_closed(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    judge = {"python": "tests.node.guard.judges:no_payment_details", "timeout_ms": 500}
    await globex.admin("PUT", "/v1/policy/guard", {"judge": judge})
    refused = await globex.client(tokens["delivery"], "POST", MESSAGES,
                                  {"body": "Please pay invoice 42 to IBAN XX00 1234"}, expect=403)
    assert refused["error"]["rules"] == ["judge"] and "payment details go through finance" in \
        refused["error"]["message"]
    await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "invoice 42 is paid"}, expect=201)
    assert [f["rules"] for f in (await globex.admin("GET", "/v1/guard/flags"))["items"]] == [["judge"]]
    await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "all good"}, expect=201)

    for python in ("tests.node.guard.judges:too_slow", "tests.node.guard.judges:broken", "tests.nowhere:judge"):
        await globex.admin("PUT", "/v1/policy/guard", {"judge": {"python": python, "timeout_ms": 200}})
        refused = await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "hello"}, expect=403)
        assert "judge failed" in refused["error"]["message"]
    await globex.admin("PUT", "/v1/policy/guard", {"judge": {"python": "tests.node.guard.judges:broken",
                                                             "on_error": "allow"}})
    await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "hello"}, expect=201)
    assert len(await _audit(globex, "guard.judge_failed")) == 1


async def test_an_http_judge(pair, unused_tcp_port_factory):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    asked: list[dict] = []

    async def decide(request: web.Request) -> web.Response:
        asked.append(await request.json())
        if "slow" in asked[-1]["text"]:
            await asyncio.sleep(2)
        return web.json_response({"decision": "block" if "secret" in asked[-1]["text"] else "allow",
                                  "reason": "the HTTP judge said so"})

    app = web.Application()
    app.router.add_post("/judge", decide)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_tcp_port_factory()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await globex.admin("PUT", "/v1/policy/guard",
                           {"judge": {"url": f"http://127.0.0.1:{port}/judge", "timeout_ms": 500}})
        await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "a public note"}, expect=201)
        refused = await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "a secret note"}, expect=403)
        assert "the HTTP judge said so" in refused["error"]["message"]
        refused = await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "a slow note"}, expect=403)
        assert "no answer within 500 ms" in refused["error"]["message"]
        assert asked[0] == {"author": f"person:sam@{GLOBEX}", "network": NETWORK, "thread": THREAD,
                            "field": "message", "text": "a public note", "findings": []}
    finally:
        await runner.cleanup()


async def test_settings_are_checked_audited_and_dry_run(pair):
    acme, _globex = pair
    refused = await acme.admin("PUT", "/v1/policy/guard", {"rules": [{"name": "x", "pattern": "(a)\\1"}]},
                               expect=422)
    assert "RE2" in str(refused["error"]["fields"])
    assert await _audit(acme, "policy.guard") == []
    await acme.admin("PUT", "/v1/policy/guard", {"terms": ["Falcon"], "terms_action": "flag"})
    (entry,) = await _audit(acme, "policy.guard")
    assert entry["detail"]["after"]["terms"] == ["Falcon"] and entry["detail"]["before"]["terms"] == []
    assert (await acme.admin("GET", "/v1/policy/guard"))["terms"] == ["Falcon"]
    check = await acme.admin("POST", "/v1/guard/check", {"text": "falcon and AKIAIOSFODNN7EXAMPLE"})
    assert (check["decision"], check["rules"]) == ("block", ["secret.aws_access_key", "term"])
    check = await acme.admin("POST", "/v1/guard/check", {"text": "falcon"})
    assert (check["decision"], check["text"]) == ("flag", "falcon")
    assert await _audit(acme, "guard.") == []  # a dry run decides nothing
    await acme.admin("POST", "/v1/guard/flags/99/review", {"verdict": "ok"}, expect=404)


async def test_deleting_private_content_lets_the_guard_forget_it(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await globex.admin("PUT", "/v1/policy/guard", {"private_content": "block"})
    item = await globex.admin("POST", "/v1/knowledge", {"title": "Playbook", "body": PLAYBOOK}, expect=201)
    await globex.admin("POST", "/v1/threads", {"name": "war-room", "title": "War room", "members": ["person:sam"]})
    line = "Acme procurement is bluffing about the competitor bid; hold the price until Friday at the latest."
    await globex.client(tokens["sam"], "POST", "/v1/threads/war-room/messages", {"body": line})
    for body in (REWORDED, line):
        await globex.client(tokens["sam"], "POST", MESSAGES, {"body": body}, expect=403)

    deleted = await globex.admin("DELETE", f"/v1/knowledge/{item['id']}")
    assert deleted == {"deleted": f"knowledge item {item['id']}", "messages": None}
    await globex.admin("DELETE", f"/v1/knowledge/{item['id']}", expect=404)
    gone = await globex.admin("DELETE", "/v1/threads/war-room")
    assert gone["messages"] == 1
    await globex.admin("GET", "/v1/threads/war-room", expect=404)
    for body in (REWORDED, line):  # nothing private says this any more
        await globex.client(tokens["sam"], "POST", MESSAGES, {"body": body}, expect=201)
    assert [e["action"] for e in await _audit(globex, "thread.delete")] == ["thread.delete"]
    (entry,) = await _audit(globex, "knowledge.delete")
    assert entry["target"] == f"knowledge:{item['id']}"
