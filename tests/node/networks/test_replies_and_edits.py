"""Replies, edits and deletes through the client API on two real nodes over TLS: each is an
event every member applies; only the author may change a message; an edit goes through the
outbound guard like a post; a deleted message leaves a tombstone on both sides."""

from __future__ import annotations

from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import NETWORK, THREAD, open_rollout

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


async def _seen(node: ClusterNode, token: str) -> dict[str, dict]:
    return {m["id"]: m for m in (await node.client(token, "GET", f"{MESSAGES}?limit=200"))["messages"]}


async def _shows(node: ClusterNode, token: str, event_id: str, **want) -> bool:
    message = (await _seen(node, token)).get(event_id)
    return message is not None and all(message[k] == v for k, v in want.items())


async def test_a_reply_an_edit_and_a_delete_reach_both_companies(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    question = await globex.client(tokens["sam"], "POST", MESSAGES, {"body": "Is the cutover still Thursday?"},
                                   expect=201)
    await eventually(lambda: _shows(acme, tokens["alex"], question["id"], status="sequenced"))
    reply = await acme.client(tokens["alex"], "POST", MESSAGES,
                              {"body": "Yes, 06:00 UTC.", "reply_to": question["id"]}, expect=201)
    assert reply["reply_to"] == question["id"]
    await eventually(lambda: _shows(globex, tokens["sam"], reply["id"], reply_to=question["id"]))

    refused = await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "?", "reply_to": "$" + "A" * 43},
                                expect=403)
    assert refused["error"]["reason"] == "unknown_event"
    malformed = await acme.client(tokens["alex"], "POST", MESSAGES, {"body": "?", "reply_to": "42"}, expect=422)
    assert "an event id" in str(malformed["error"]["fields"])

    # "Working on it", then the answer: one post and one edit.
    working = await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "working on it"}, expect=201)
    edited = await globex.client(tokens["delivery"], "PATCH", f"{MESSAGES}/{working['id']}",
                                 {"body": "Validated: retries stop after 3 attempts (GLX-431)."})
    assert (edited["body"], edited["edited"]) == ("Validated: retries stop after 3 attempts (GLX-431).", True)
    for node, token in ((globex, tokens["sam"]), (acme, tokens["alex"])):
        await eventually(lambda node=node, token=token: _shows(
            node, token, working["id"], body="Validated: retries stop after 3 attempts (GLX-431).", edited=True))
    # What the edit replaced: shown to the author's company (Sam is Globex too), not to Acme.
    (ours,) = [m for m in (await _seen(globex, tokens["sam"])).values() if m["id"] == working["id"]]
    assert [h["body"] for h in ours["history"]] == ["working on it"] and ours["history"][0]["replaced_at"] > 0
    assert (await _seen(acme, tokens["alex"]))[working["id"]]["history"] is None
    # Only the author: another participant of its own company, or of another, is refused.
    await globex.client(tokens["sam"], "PATCH", f"{MESSAGES}/{working['id']}", {"body": "x"}, expect=403)
    await acme.client(tokens["alex"], "PATCH", f"{MESSAGES}/{working['id']}", {"body": "x"}, expect=403)
    await acme.client(tokens["alex"], "PATCH", f"{MESSAGES}/{'$' + 'B' * 43}", {"body": "x"}, expect=404)

    await globex.client(tokens["delivery"], "DELETE", f"{MESSAGES}/{working['id']}")
    for node, token in ((globex, tokens["sam"]), (acme, tokens["alex"])):
        await eventually(lambda node=node, token=token: _shows(node, token, working["id"], body="", deleted=True,
                                                               edited=False))
    gone = await globex.client(tokens["delivery"], "PATCH", f"{MESSAGES}/{working['id']}", {"body": "again"},
                               expect=403)
    assert gone["error"]["reason"] == "message_deleted"
    # The author's node took its own delete back from the host without halting (it once counted
    # its own pending delete as "already deleted" and refused the host's copy): talk goes on.
    after = await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "next"}, expect=201)
    await eventually(lambda: _shows(globex, tokens["delivery"], after["id"], status="sequenced"))
    assert (await globex.admin("GET", "/v1/alerts"))["items"] == []


async def test_an_edit_goes_through_the_outbound_guard(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    posted = await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "status soon"}, expect=201)
    await globex.admin("PUT", "/v1/policy/guard", {"terms": ["Project Nightjar"]})
    sent_before = len(globex.sent)
    refused = await globex.client(tokens["delivery"], "PATCH", f"{MESSAGES}/{posted['id']}",
                                  {"body": "status: project nightjar slipped"}, expect=403)
    assert refused["error"]["code"] == "outbound_blocked" and refused["error"]["rules"] == ["term"]
    assert not any(b"nightjar" in chunk for chunk in globex.sent[sent_before:])
    (entry,) = (await globex.admin("GET", "/v1/audit?action=guard.blocked"))["items"]
    assert entry["detail"]["field"] == "edit"
    assert (await _seen(globex, tokens["sam"]))[posted["id"]]["body"] == "status soon"


async def test_reading_backwards_from_the_newest_keeps_pages_full(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    posted = []
    for i in range(7):
        posted.append(await acme.client(tokens["alex"], "POST", MESSAGES, {"body": f"m{i}"}, expect=201))
        if i == 4:  # an edit is an event of the thread too, but not a message: it takes no place on a page
            await acme.client(tokens["alex"], "PATCH", f"{MESSAGES}/{posted[1]['id']}", {"body": "m1 (edited)"})
    pages, before = [], "latest"
    while before is not None:
        page = await acme.client(tokens["alex"], "GET", f"{MESSAGES}?before={before}&limit=3")
        pages.append([m["body"] for m in page["messages"]])
        before = page["prev_cursor"]
    assert pages == [["m4", "m5", "m6"], ["m1 (edited)", "m2", "m3"], ["m0"]]
    both = await acme.client(tokens["alex"], "GET", f"{MESSAGES}?before=5&after=1", expect=422)
    assert "not both" in str(both["error"]["fields"])
    await acme.client(tokens["alex"], "GET", f"{MESSAGES}?before=yesterday", expect=422)
