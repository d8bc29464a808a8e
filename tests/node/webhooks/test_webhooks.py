"""Webhooks end to end: real nodes, real receivers (aiohttp servers on 127.0.0.1) that check
every delivery with the documented recipe, retries, disabling and re-enabling, what an agent
may and may not register, and a message posted on one node reaching an agent's webhook on
the other."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import standardwebhooks
from aiohttp import web

from node.basics.clock import SystemClock
from node.basics.limits import WebhookLimits
from node.feed.hub import FeedHub
from node.feed.service import FeedService
from node.main.listeners import build_admin_app, build_client_app
from node.webhooks.api import WebhookService, webhook_admin_endpoints, webhook_client_endpoints
from node.webhooks.resolver import Destinations
from node.webhooks.signing import InvalidWebhookSignature, verify
from node.webhooks.worker import WebhookWorker
from node.workspace.bootstrap import bootstrap_company
from node.workspace.directory import Directory
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.conftest import FakeClock, bearer, client_parts
from tests.node.federation.test_lifecycle import NETWORK, THREAD, incident
from tests.tls_fixtures import TestCertificateAuthority

ACME, GLOBEX = "acme.example", "globex.example"


class Receiver:
    """A webhook receiver: checks each delivery with the recipe in docs/webhooks.md, answers
    with the next status of `script` (then `default`), and keeps what it saw."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.script: list[int] = []
        self.default = 200
        self.seen: list[tuple[str, dict]] = []  # (webhook-id, payload) of every verified request
        self.accepted: list[tuple[str, dict]] = []  # the ones answered 2xx
        self.rejected = 0  # requests whose signature did not verify
        self.url = ""
        self.delay_s = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(self.delay_s)
        try:
            msg_id = verify(self.secret, request.headers, body, now_s=int(time.time()))
        except InvalidWebhookSignature:
            self.rejected += 1
            return web.Response(status=401)
        standardwebhooks.Webhook(self.secret).verify(body, dict(request.headers))  # the package agrees
        payload = json.loads(body)
        self.seen.append((msg_id, payload))
        status = self.script.pop(0) if self.script else self.default
        if status < 300:
            self.accepted.append((msg_id, payload))
        return web.Response(status=status, text="ok" if status < 300 else "receiver says no")

    def bodies(self) -> list[str]:
        return [p["data"]["body"] for _id, p in self.accepted]


@pytest.fixture
async def receivers() -> AsyncIterator:
    runners = []

    async def make() -> Receiver:
        receiver = Receiver()
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        return receiver

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def acme(tmp_path, database_url) -> AsyncIterator[ClusterNode]:
    node = await start_node(tmp_path, ACME, TestCertificateAuthority(), database_url)
    yield node
    await node.stop()


async def register(node: ClusterNode, token: str, receiver: Receiver) -> dict:
    made = await node.client(token, "POST", "/v1/webhooks", {"url": receiver.url}, expect=201)
    receiver.secret = made["secret"]
    return made


async def admin_view(node: ClusterNode, webhook_id: str) -> dict:
    (found,) = [h for h in (await node.admin("GET", "/v1/webhooks"))["items"] if h["id"] == webhook_id]
    return found


async def until(predicate) -> None:
    """`eventually` for a plain condition on what a receiver saw."""
    async def check():
        return predicate()

    await eventually(check)


async def post(node: ClusterNode, token: str, thread: str, body: str) -> None:
    await node.client(token, "POST", f"/v1/threads/{thread}/messages", {"body": body}, expect=201)


async def test_a_private_message_reaches_its_members_webhook_signed_and_not_a_non_members(acme, receivers):
    ops = await acme.create("agent", "ops", "Ops")
    alex = await acme.create("person", "alex", "Alex")
    outsider = await acme.create("agent", "outsider", "Outsider")
    await acme.admin("POST", "/v1/threads",
                     {"name": "billing", "title": "Billing", "members": ["agent:ops", "person:alex"]})
    member_hook, outsider_hook = await receivers(), await receivers()
    made = await register(acme, ops, member_hook)
    assert (made["status"], made["url"], made["failures"]) == ("active", member_hook.url, 0)
    assert made["secret"].startswith("whsec_")
    outsider_made = await register(acme, outsider, outsider_hook)
    listed = (await acme.client(ops, "GET", "/v1/webhooks"))["items"]
    assert [h["id"] for h in listed] == [made["id"]] and "secret" not in listed[0]

    await post(acme, alex, "billing", "Refund approved for ACME-1182.")
    await until(lambda: member_hook.accepted)
    ((msg_id, payload),) = member_hook.accepted
    data = payload["data"]
    assert msg_id == f"msg_{made['id']}_{data['cursor']}"
    assert (payload["type"], data["scope"], data["thread"], data["sender"], data["body"]) == (
        "message.posted", "private", "billing", f"person:alex@{ACME}", "Refund approved for ACME-1182.")
    assert payload["timestamp"].endswith("Z") and payload["timestamp"][:4].isdigit()

    # The outsider's webhook stepped over the row without a request.
    async def outsider_passed_it():
        return int((await admin_view(acme, outsider_made["id"]))["cursor"]) >= int(data["cursor"])

    await eventually(outsider_passed_it)
    assert outsider_hook.seen == [] and member_hook.rejected == outsider_hook.rejected == 0
    view = await admin_view(acme, made["id"])
    assert (view["owner"], view["last_status"], view["last_success_at"] is not None) == (f"agent:ops@{ACME}", 200, True)
    assert "secret" not in view


async def test_a_filtered_webhook_delivers_only_what_it_follows_and_steps_over_the_rest(acme, receivers):
    ops = await acme.create("agent", "ops", "Ops")
    alex = await acme.create("person", "alex", "Alex")
    for name in ("billing", "ops-log"):
        await acme.admin("POST", "/v1/threads", {"name": name, "title": name, "members": ["agent:ops", "person:alex"]})
    await acme.admin("POST", "/v1/networks", {"name": "desk", "title": "Desk"})
    for who in ("agent:ops", "person:alex"):
        await acme.admin("POST", "/v1/networks/desk/participants", {"participant": who})
    await acme.admin("POST", "/v1/networks/desk/threads", {"name": "triage", "title": "Triage",
                                                            "participants": [f"agent:ops@{ACME}", f"person:alex@{ACME}"]})
    billing, mentions = await receivers(), await receivers()
    made = await acme.client(ops, "POST", "/v1/webhooks", {"url": billing.url, "filter": {"thread": "billing"}},
                             expect=201)
    billing.secret = made["secret"]
    assert made["filter"] == {"network": None, "thread": "billing", "types": None, "mentions": False}
    made = await acme.client(ops, "POST", "/v1/webhooks", {"url": mentions.url, "filter": {"mentions": True}},
                             expect=201)
    mentions.secret = made["secret"]
    bad = await acme.client(ops, "POST", "/v1/webhooks", {"url": billing.url, "filter": {"types": ["posted"]}},
                            expect=422)
    assert "an event type" in bad["error"]["message"]

    for i in range(25):  # more than one filtered read steps over at once
        await post(acme, alex, "ops-log", f"noise {i}")
    await post(acme, alex, "billing", "Refund approved.")
    triage = "/v1/networks/desk/threads/triage/messages"
    await acme.client(alex, "POST", triage, {"body": "chatter"}, expect=201)
    await acme.client(alex, "POST", triage, {"body": "Ops, can you check?", "mentions": [f"agent:ops@{ACME}"]},
                      expect=201)
    await post(acme, alex, "billing", "Invoice sent.")
    await until(lambda: len(billing.accepted) == 2 and len(mentions.accepted) == 1)
    assert billing.bodies() == ["Refund approved.", "Invoice sent."]
    assert mentions.bodies() == ["Ops, can you check?"]
    await asyncio.sleep(0.3)  # nothing else arrives late
    assert len(billing.seen) == 2 and len(mentions.seen) == 1


async def test_retries_keep_the_webhook_id_and_deliver_each_event_once_in_order(acme, receivers):
    ops = await acme.create("agent", "ops", "Ops")
    await acme.admin("POST", "/v1/threads", {"name": "ops-log", "title": "Log", "members": ["agent:ops"]})
    receiver = await receivers()
    receiver.script = [500, 503]
    made = await register(acme, ops, receiver)
    for body in ("first", "second", "third"):
        await post(acme, ops, "ops-log", body)
    await until(lambda: len(receiver.accepted) == 3)
    ids = [msg_id for msg_id, _payload in receiver.seen]
    assert ids[0] == ids[1] == ids[2] != ids[3]  # failed twice, then the same message succeeded
    assert receiver.bodies() == ["first", "second", "third"]
    assert len(set(ids)) == 3 and len(receiver.seen) == 5
    view = await admin_view(acme, made["id"])
    assert (view["status"], view["failures"], view["last_status"], view["last_error"]) == ("active", 0, 200, None)


async def test_an_endpoint_that_keeps_failing_is_disabled_and_enabling_resumes_without_loss(acme, receivers):
    ops = await acme.create("agent", "ops", "Ops")
    await acme.admin("POST", "/v1/threads", {"name": "ops-log", "title": "Log", "members": ["agent:ops"]})
    receiver = await receivers()
    receiver.default = 500
    made = await register(acme, ops, receiver)
    await post(acme, ops, "ops-log", "one")

    async def disabled():
        return (await admin_view(acme, made["id"]))["status"] == "disabled"

    await eventually(disabled)
    view = await admin_view(acme, made["id"])
    assert view["failures"] >= 3 and view["last_status"] == 500
    assert "failed deliveries in a row" in view["disabled_reason"] and "HTTP 500" in view["disabled_reason"]
    assert "receiver says no" in view["last_error"]
    own = (await acme.client(ops, "GET", "/v1/webhooks"))["items"][0]
    assert own["status"] == "disabled" and own["disabled_reason"] == view["disabled_reason"]

    attempts = len(receiver.seen)
    await post(acme, ops, "ops-log", "two")  # while disabled: kept, not sent
    assert receiver.accepted == [] and len(receiver.seen) == attempts
    receiver.default = 200
    enabled = await acme.admin("POST", f"/v1/webhooks/{made['id']}/enable")
    assert (enabled["status"], enabled["failures"], enabled["disabled_reason"]) == ("active", 0, None)
    await until(lambda: len(receiver.accepted) == 2)
    assert receiver.bodies() == ["one", "two"]

    # The operator stops it by hand; the owner turns it back on; nothing posted meanwhile is lost.
    stopped = await acme.admin("POST", f"/v1/webhooks/{made['id']}/disable")
    assert stopped["status"] == "disabled" and stopped["disabled_reason"].startswith("disabled by admin:")
    await post(acme, ops, "ops-log", "three")
    await acme.client(ops, "POST", f"/v1/webhooks/{made['id']}/enable")
    await until(lambda: len(receiver.accepted) == 3)
    assert receiver.bodies() == ["one", "two", "three"]
    actions = [(e["action"], e["target"]) for e in (await acme.admin("GET", "/v1/audit"))["items"]]
    target = f"webhook:{made['id']}"
    assert {("webhook.create", target), ("webhook.enable", target), ("webhook.disable", target)} <= set(actions)


async def test_a_federated_message_reaches_an_agents_webhook_on_the_other_node(tmp_path, receivers):
    ca = TestCertificateAuthority()
    nodes = [await start_node(tmp_path, ACME, ca), await start_node(tmp_path, GLOBEX, ca)]
    try:
        acme, globex = nodes
        tokens = await incident(nodes)
        receiver = await receivers()
        made = await register(globex, tokens[GLOBEX], receiver)
        await acme.client(tokens[ACME], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                          {"body": "Rollback window opens at 14:00."}, expect=201)

        async def delivered():
            return [p for _id, p in receiver.accepted if p["type"] == "message.posted"]

        (payload,) = await eventually(delivered)
        data = payload["data"]
        assert (data["scope"], data["network"], data["thread"], data["sender"], data["body"]) == (
            "shared", NETWORK, THREAD, f"agent:oncall@{ACME}", "Rollback window opens at 14:00.")
        assert data["seq"] is not None and receiver.rejected == 0
        assert receiver.accepted[0][0] == f"msg_{made['id']}_{data['cursor']}"
    finally:
        for node in reversed(nodes):
            await node.stop()


# Input rules, on the two listeners with the production defaults (https only).

@pytest.fixture
async def listeners(storage, aiohttp_client):
    clock = FakeClock()
    admin_token = await bootstrap_company(storage, server_name=ACME, display_name="Acme", now=clock.now_ms())
    directory = Directory(ACME)
    service = WebhookService(storage, clock, directory, WebhookLimits())
    admin = await aiohttp_client(build_admin_app(storage, clock, directory, extra=webhook_admin_endpoints(service)))
    client = await aiohttp_client(build_client_app(storage, clock, directory, **client_parts(storage, clock, directory),
                                                   extra=webhook_client_endpoints(service)))

    async def agent(handle: str, **extra) -> str:
        made = await admin.post("/v1/agents", json={"handle": handle, "display_name": handle, **extra},
                                headers=bearer(admin_token))
        assert made.status == 201
        return (await made.json())["token"]

    return admin, client, bearer(admin_token), agent


BAD_URLS = [
    "http://receiver.example/hook",  # plain http needs webhook_allow_http
    "ftp://receiver.example/hook",
    "not a url",
    "https:///no-host",
    "https://user:pw@receiver.example/hook",
    "https://receiver.example/hook#part",
    "https://receiver.example/" + "a" * 2000,
]


async def test_bad_urls_are_refused(listeners):
    _admin, client, _as_admin, agent = listeners
    ops = await agent("ops")
    for url in BAD_URLS:
        resp = await client.post("/v1/webhooks", json={"url": url}, headers=bearer(ops))
        assert resp.status == 422, (url, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_request" and error["fields"][0]["field"] == "url", url
    assert (await (await client.get("/v1/webhooks", headers=bearer(ops))).json())["items"] == []


async def test_ownership_scope_and_the_per_principal_limit(listeners):
    admin, client, as_admin, agent = listeners
    ops, other = await agent("ops"), await agent("other")
    made = await client.post("/v1/webhooks", json={"url": "https://receiver.example/hook"}, headers=bearer(ops))
    assert made.status == 201
    hook = await made.json()
    for method, path in (("DELETE", f"/v1/webhooks/{hook['id']}"), ("POST", f"/v1/webhooks/{hook['id']}/enable"),
                         ("DELETE", "/v1/webhooks/99999")):
        resp = await client.request(method, path, headers=bearer(other))
        assert resp.status == 404, (method, path)
    assert (await client.delete("/v1/webhooks/abc", headers=bearer(other))).status == 422  # not an id at all
    assert (await (await client.get("/v1/webhooks", headers=bearer(other))).json())["items"] == []

    reader = await agent("reader", scopes=["read"])
    resp = await client.post("/v1/webhooks", json={"url": "https://receiver.example/hook"}, headers=bearer(reader))
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "insufficient_scope"
    assert (await client.get("/v1/webhooks", headers=bearer(reader))).status == 403

    for n in range(9):
        resp = await client.post("/v1/webhooks", json={"url": f"https://receiver.example/{n}"}, headers=bearer(ops))
        assert resp.status == 201
    resp = await client.post("/v1/webhooks", json={"url": "https://receiver.example/x"}, headers=bearer(ops))
    assert resp.status == 409
    assert (await client.delete(f"/v1/webhooks/{hook['id']}", headers=bearer(ops))).status == 200
    assert len((await (await admin.get("/v1/webhooks", headers=as_admin)).json())["items"]) == 9
    assert (await admin.post("/v1/webhooks/99999/disable", headers=as_admin)).status == 404
    assert (await client.post("/v1/webhooks", json={"url": "https://receiver.example/x", "extra": 1},
                              headers=bearer(ops))).status == 422


async def test_two_workers_on_one_database_send_each_event_once(storage, aiohttp_client, receivers):
    """Two node processes sharing a database: the claim lets only one of them send at a time."""
    clock = FakeClock()
    admin_token = await bootstrap_company(storage, server_name=ACME, display_name="Acme", now=clock.now_ms())
    directory = Directory(ACME)
    limits = WebhookLimits(allow_http=True, allowed_hosts=("127.0.0.1",))
    service = WebhookService(storage, clock, directory, limits)
    admin = await aiohttp_client(build_admin_app(storage, clock, directory))
    client = await aiohttp_client(build_client_app(storage, clock, directory, **client_parts(storage, clock, directory),
                                                   extra=webhook_client_endpoints(service)))
    made = await admin.post("/v1/agents", json={"handle": "ops", "display_name": "Ops"}, headers=bearer(admin_token))
    ops = bearer((await made.json())["token"])
    await admin.post("/v1/threads", json={"name": "log", "title": "Log", "members": ["agent:ops"]},
                     headers=bearer(admin_token))
    receiver = await receivers()
    receiver.delay_s = 0.05  # both workers are looking while a request is in flight
    hook = await (await client.post("/v1/webhooks", json={"url": receiver.url}, headers=ops)).json()
    receiver.secret = hook["secret"]
    for body in ("a", "b", "c"):
        assert (await client.post("/v1/threads/log/messages", json={"body": body}, headers=ops)).status == 201
    feed = FeedService(storage, SystemClock(), directory, FeedHub())
    destinations = Destinations.from_limits(limits)
    async with aiohttp.ClientSession(connector=destinations.connector()) as session:
        workers = [WebhookWorker(storage, feed, SystemClock(), limits, destinations=destinations, session=session)
                   for _ in range(2)]
        started = await asyncio.gather(*(w.run_once() for w in workers))
    assert sorted(started) in ([0, 1], [1, 1])  # 0: it was already claimed when that worker looked
    assert receiver.bodies() == ["a", "b", "c"] and len(receiver.seen) == 3

    # The claim itself: one winner while the lease runs, another process once it lapses.
    webhook_id, now = int(hook["id"]), SystemClock().now_ms() + 10_000
    async with storage.transaction() as tx:
        assert (await tx.webhooks.claim(webhook_id, now=now, lease_until=now + 1000)) is not None
    async with storage.transaction() as tx:
        assert await tx.webhooks.claim(webhook_id, now=now + 999, lease_until=now + 2000) is None
    async with storage.transaction() as tx:
        assert (await tx.webhooks.claim(webhook_id, now=now + 1000, lease_until=now + 2000)).cursor == int(
            receiver.accepted[-1][1]["data"]["cursor"])


async def test_feed_commits_do_not_wake_the_worker_while_no_webhook_is_active(storage):
    from node.basics.clock import SystemClock
    from node.feed.hub import FeedHub
    from node.feed.service import FeedService
    from node.webhooks.worker import WebhookWorker
    from node.workspace.directory import Directory

    clock = SystemClock()
    worker = WebhookWorker(storage, FeedService(storage, clock, Directory("acme.example"), FeedHub()), clock)
    worker.feed_grew()
    assert worker._wakeup.is_set()  # before its first look it cannot know
    worker._wakeup.clear()
    assert await worker.run_once() == 0
    worker.feed_grew()
    assert not worker._wakeup.is_set()  # nothing to deliver: no query per commit
    async with storage.transaction() as tx:  # a webhook made by another process
        owner = await tx.principals.create(kind="agent", handle="ops", display_name="Ops", profile="", now=1)
        await tx.webhooks.create(owner.id, url="https://hooks.example/x", secret="whsec_x", cursor=0, now=1)
    await worker.run_once()  # the next poll sees it
    worker.feed_grew()
    assert worker._wakeup.is_set()
