"""The activity feed through "events since": visibility, cursors, long poll, 410, and the
edge of posting (Idempotency-Key, rate limit)."""

import asyncio

import pytest

from node.basics.limits import ClientLimits
from node.main.housekeeping import HousekeepingWorker
from tests.node.conftest import SERVER, bearer, start_local_node


async def _setup(node):
    tokens = {h: await node.create(k, h) for k, h in [("person", "alex"), ("agent", "ops"), ("person", "sam")]}
    for name, members in [("billing", ["person:alex", "agent:ops"]), ("qa", ["person:sam"])]:
        resp = await node.admin.post("/v1/threads", json={"name": name, "title": name, "members": members},
                                     headers=node.as_admin())
        assert resp.status == 201
    return tokens


async def _post(node, token, thread, body, **headers):
    resp = await node.client.post(f"/v1/threads/{thread}/messages", json={"body": body},
                                  headers={**bearer(token), **headers})
    assert resp.status == 201, await resp.text()
    return resp


async def _events(node, token, after=None, **params):
    query = "&".join(f"{k}={v}" for k, v in {"after": after, **params}.items() if v is not None)
    resp = await node.client.get(f"/v1/events?{query}", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_no_cursor_starts_from_now(node):
    tokens = await _setup(node)
    await _post(node, tokens["alex"], "billing", "before")
    page = await _events(node, tokens["ops"])
    assert page["events"] == []
    await _post(node, tokens["alex"], "billing", "after")
    page = await _events(node, tokens["ops"], page["next_cursor"])
    assert [e["body"] for e in page["events"]] == ["after"]
    event = page["events"][0]
    assert event["scope"] == "private" and event["thread"] == "billing" and event["type"] == "message.posted"
    assert event["sender"] == f"person:alex@{SERVER}" and event["cursor"] == page["next_cursor"]


async def test_caller_sees_only_threads_it_belongs_to(node):
    tokens = await _setup(node)
    start = {h: (await _events(node, t))["next_cursor"] for h, t in tokens.items()}
    await _post(node, tokens["alex"], "billing", "for billing")
    await _post(node, tokens["sam"], "qa", "for qa")
    seen = {h: [e["body"] for e in (await _events(node, t, start[h]))["events"]] for h, t in tokens.items()}
    assert seen == {"alex": ["for billing"], "ops": ["for billing"], "sam": ["for qa"]}


async def test_cursor_pages_have_no_gap_or_duplicate(node):
    tokens = await _setup(node)
    cursor = (await _events(node, tokens["ops"]))["next_cursor"]
    for i in range(7):
        await _post(node, tokens["alex"], "billing", f"m{i}")
        await _post(node, tokens["sam"], "qa", f"hidden{i}")
    seen = []
    while True:
        page = await _events(node, tokens["ops"], cursor, limit=3)
        seen += [e["body"] for e in page["events"]]
        if not page["events"]:
            break
        assert int(page["next_cursor"]) > int(cursor)
        cursor = page["next_cursor"]
    assert seen == [f"m{i}" for i in range(7)]


async def test_long_poll_returns_when_an_event_arrives(node):
    tokens = await _setup(node)
    cursor = (await _events(node, tokens["ops"]))["next_cursor"]

    async def post_later():
        await asyncio.sleep(0.3)
        await _post(node, tokens["alex"], "billing", "wake up")

    poster = asyncio.create_task(post_later())
    started = asyncio.get_running_loop().time()
    page = await _events(node, tokens["ops"], cursor, wait=20)
    await poster
    assert [e["body"] for e in page["events"]] == ["wake up"]
    assert asyncio.get_running_loop().time() - started < 10  # woken, not timed out


async def test_long_poll_times_out_empty_with_a_usable_cursor(node):
    tokens = await _setup(node)
    cursor = (await _events(node, tokens["ops"]))["next_cursor"]
    await _post(node, tokens["sam"], "qa", "not for ops")
    page = await _events(node, tokens["ops"], cursor, wait=1)
    assert page["events"] == [] and int(page["next_cursor"]) >= int(cursor)


async def test_cursor_ahead_of_the_feed_is_410(node):
    tokens = await _setup(node)
    resp = await node.client.get("/v1/events?after=999999", headers=bearer(tokens["ops"]))
    assert resp.status == 410
    assert (await resp.json())["error"]["code"] == "cursor_unknown"


async def test_pruned_cursor_is_410_with_what_to_do(node):
    tokens = await _setup(node)
    cursor = (await _events(node, tokens["ops"]))["next_cursor"]
    await _post(node, tokens["alex"], "billing", "old")
    node.clock.now += 10 * 3600 * 1000
    await _post(node, tokens["alex"], "billing", "new")
    forgotten = await HousekeepingWorker(node.storage, node.clock, feed_retention_ms=3600 * 1000).run_once()
    assert forgotten["feed rows"] == 1
    resp = await node.client.get(f"/v1/events?after={cursor}", headers=bearer(tokens["ops"]))
    assert resp.status == 410
    error = (await resp.json())["error"]
    assert error["code"] == "cursor_expired" and "omit `after`" in error["message"]
    stream = await node.client.get("/v1/events/stream", headers={**bearer(tokens["ops"]), "Last-Event-ID": cursor})
    assert stream.status == 410


@pytest.mark.parametrize("query", ["after=-1", "after=abc", "after=1" + "0" * 20, "limit=0", "limit=500",
                                   "wait=61", "wait=x", "since=1"])
async def test_bad_event_queries_are_422(node, query):
    tokens = await _setup(node)
    resp = await node.client.get(f"/v1/events?{query}", headers=bearer(tokens["ops"]))
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "invalid_request"


async def test_idempotent_retry_is_stored_once(node):
    tokens = await _setup(node)
    first = await _post(node, tokens["alex"], "billing", "once", **{"Idempotency-Key": "k-1"})
    again = await _post(node, tokens["alex"], "billing", "once", **{"Idempotency-Key": "k-1"})
    assert await first.json() == await again.json()
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    page = await (await node.client.get("/v1/threads/billing/messages", headers=bearer(tokens["ops"]))).json()
    assert [m["body"] for m in page["messages"]] == ["once"]
    # Keys belong to their principal: another caller's same key is a new post.
    await _post(node, tokens["ops"], "billing", "once", **{"Idempotency-Key": "k-1"})
    page = await (await node.client.get("/v1/threads/billing/messages", headers=bearer(tokens["ops"]))).json()
    assert len(page["messages"]) == 2


async def test_concurrent_retries_with_one_key_store_one_message(node):
    tokens = await _setup(node)
    responses = await asyncio.gather(*[
        node.client.post("/v1/threads/billing/messages", json={"body": "race"},
                         headers={**bearer(tokens["alex"]), "Idempotency-Key": "same"})
        for _ in range(5)
    ])
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {201} and len({b["id"] for b in bodies}) == 1
    page = await (await node.client.get("/v1/threads/billing/messages", headers=bearer(tokens["ops"]))).json()
    assert [m["body"] for m in page["messages"]] == ["race"]


async def test_idempotency_key_reused_for_another_body_is_refused(node):
    tokens = await _setup(node)
    await _post(node, tokens["alex"], "billing", "first", **{"Idempotency-Key": "k-2"})
    resp = await node.client.post("/v1/threads/billing/messages", json={"body": "second"},
                                  headers={**bearer(tokens["alex"]), "Idempotency-Key": "k-2"})
    assert resp.status == 422
    assert "different request" in (await resp.json())["error"]["message"]
    for bad in ["", "x" * 256, "bad key"]:
        resp = await node.client.post("/v1/threads/billing/messages", json={"body": "third"},
                                      headers={**bearer(tokens["alex"]), "Idempotency-Key": bad})
        assert resp.status == 422
    page = await (await node.client.get("/v1/threads/billing/messages", headers=bearer(tokens["ops"]))).json()
    assert [m["body"] for m in page["messages"]] == ["first"]


async def test_posting_too_fast_is_429_with_retry_after(storage, aiohttp_client):
    node = await start_local_node(storage, aiohttp_client, ClientLimits(post_rate_per_s=0.5, post_burst=3))
    tokens = await _setup(node)
    for i in range(3):
        await _post(node, tokens["alex"], "billing", f"m{i}")
    resp = await node.client.post("/v1/threads/billing/messages", json={"body": "too many"},
                                  headers=bearer(tokens["alex"]))
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "too_many_requests"
    assert 1 <= int(resp.headers["Retry-After"]) <= 2
    # The limit is per token: another caller still posts, and reading is not limited.
    await _post(node, tokens["ops"], "billing", "ops is fine")
    page = await (await node.client.get("/v1/threads/billing/messages", headers=bearer(tokens["alex"]))).json()
    assert [m["body"] for m in page["messages"]] == ["m0", "m1", "m2", "ops is fine"]
