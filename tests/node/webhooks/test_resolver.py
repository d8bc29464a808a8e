"""Webhook destinations as a hostile principal tries them: URLs aimed at loopback, the metadata
service, private networks and the node's own listeners are refused at registration (422,
nothing stored); a name that answers a public address at registration and 127.0.0.1 at
delivery (DNS rebinding) is refused at delivery, recorded as a failure, and never reaches the
receiver; and the operator's allow list lets named internal receivers through."""

from __future__ import annotations

import socket
from dataclasses import replace

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from node.basics.clock import SystemClock
from node.basics.limits import WebhookLimits
from node.feed.hub import FeedHub
from node.feed.service import FeedService
from node.main.listeners import build_admin_app, build_client_app
from node.webhooks.api import WebhookService, webhook_client_endpoints
from node.webhooks.resolver import Destinations
from node.webhooks.signing import generate_secret
from node.webhooks.worker import WebhookWorker
from node.workspace.bootstrap import bootstrap_company
from node.workspace.directory import Directory
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.conftest import FakeClock, bearer, client_parts
from tests.node.webhooks.test_webhooks import Receiver, receivers, until  # noqa: F401
from tests.tls_fixtures import TestCertificateAuthority

ACME = "acme.example"
ALLOW_LIST_HINT = "ask the operator to add the host to webhook_allowed_hosts"


class ScriptedDns(AbstractResolver):
    """DNS that answers as the test says: each lookup of a name takes the next answer in its
    script, and the last answer repeats; a name without a script does not exist."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "."): script for name, script in answers.items()}
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        script = self.answers.get(host)
        if not script:
            raise OSError(f"{host}: no such name")
        addresses = script.pop(0) if len(script) > 1 else script[0]
        return [ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for a in addresses]

    async def close(self) -> None:
        pass


class Api:
    """The client listener of a node with `limits` (and `dns`, else the system's), an agent on it
    with a private thread, and a way to look at what was stored."""

    def __init__(self, storage, client, admin, admin_token: str, destinations: Destinations) -> None:
        self.storage, self.client, self.admin, self.admin_token = storage, client, admin, admin_token
        self.destinations = destinations
        self.ops: dict[str, str] = {}

    async def register(self, url: str, *, expect: int) -> dict:
        resp = await self.client.post("/v1/webhooks", json={"url": url}, headers=self.ops)
        body = await resp.json()
        assert resp.status == expect, (url, resp.status, body)
        return body

    async def stored(self) -> tuple[list, list[str]]:
        async with self.storage.transaction() as tx:
            hooks = await tx.webhooks.all()
        audit = await (await self.admin.get("/v1/audit", headers=bearer(self.admin_token))).json()
        return hooks, [e["action"] for e in audit["items"] if e["action"].startswith("webhook.")]


@pytest.fixture
async def api(storage, aiohttp_client):
    async def make(limits: WebhookLimits = WebhookLimits(), dns: AbstractResolver | None = None) -> Api:
        clock = FakeClock()
        admin_token = await bootstrap_company(storage, server_name=ACME, display_name="Acme", now=clock.now_ms())
        directory = Directory(ACME)
        destinations = Destinations.from_limits(limits, resolver=dns)
        service = WebhookService(storage, clock, directory, limits, destinations=destinations)
        admin = await aiohttp_client(build_admin_app(storage, clock, directory))
        client = await aiohttp_client(build_client_app(storage, clock, directory, **client_parts(storage, clock, directory),
                                                       extra=webhook_client_endpoints(service)))
        made = await admin.post("/v1/agents", json={"handle": "ops", "display_name": "Ops"},
                                headers=bearer(admin_token))
        assert made.status == 201
        await admin.post("/v1/threads", json={"name": "log", "title": "Log", "members": ["agent:ops"]},
                         headers=bearer(admin_token))
        node = Api(storage, client, admin, admin_token, destinations)
        node.ops = bearer((await made.json())["token"])
        return node

    return make


def _refused(body: dict, *words: str) -> None:
    error = body["error"]
    assert (error["code"], [f["field"] for f in error["fields"]]) == ("invalid_request", ["url"])
    for word in words:
        assert word in error["message"], (word, error["message"])


REFUSED_URLS = [
    ("https://127.0.0.1/hook", "a loopback address"),
    ("https://127.0.0.1:8701/v1/agents", "a loopback address"),
    ("https://[::1]/hook", "a loopback address"),
    ("https://[::ffff:127.0.0.1]/hook", "a loopback address"),
    ("https://localhost/hook", "localhost resolves to 127.0.0.1, a loopback address"),  # the real resolver
    ("https://2130706433/hook", "resolves to 127.0.0.1, a loopback address"),  # 127.0.0.1 as one number
    ("https://127.1/hook", "resolves to 127.0.0.1, a loopback address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("https://[fe80::1]/hook", "a link-local address"),
    ("https://10.0.0.5/hook", "a private address"),
    ("https://172.16.0.1/hook", "a private address"),
    ("https://192.168.1.10/hook", "a private address"),
    ("https://[fd00::1]/hook", "a private address"),
    ("https://0.0.0.0/hook", "an unspecified address"),
    ("https://[::]/hook", "an unspecified address"),
    ("https://224.0.0.1/hook", "a multicast address"),
    ("https://[ff02::1]/hook", "a multicast address"),
    ("https://240.0.0.1/hook", "a reserved address"),
    ("https://100.64.0.1/hook", "not a public address"),
]


async def test_each_kind_of_internal_address_is_refused_at_registration_and_nothing_is_stored(api):
    node = await api()  # the production defaults: no allow list, the system's resolver
    for url, kind in REFUSED_URLS:
        _refused(await node.register(url, expect=422), kind, ALLOW_LIST_HINT)
    assert await node.stored() == ([], [])
    await node.register("https://hooks.example/agentnet", expect=201)  # no such name yet: delivery checks
    assert len((await node.stored())[0]) == 1


async def test_a_name_that_resolves_to_an_internal_address_is_refused(api):
    dns = ScriptedDns(hooks_corp_example=[["10.1.2.3"]], mixed_example=[["93.184.216.34", "192.168.0.7"]],
                      public_example=[["93.184.216.34", "2606:4700::1111"]])
    node = await api(dns=dns)
    _refused(await node.register("https://hooks.corp.example/hook", expect=422),
             "hooks.corp.example resolves to 10.1.2.3, a private address", ALLOW_LIST_HINT)
    # Every address of the answer counts, not just the first.
    _refused(await node.register("https://mixed.example/hook", expect=422), "resolves to 192.168.0.7")
    assert await node.stored() == ([], [])
    await node.register("https://public.example/hook", expect=201)
    assert [h.url for h in (await node.stored())[0]] == ["https://public.example/hook"]


async def test_the_allow_list_lets_named_internal_receivers_through_and_no_others(api):
    dns = ScriptedDns(hooks_corp_example=[["10.1.2.3"]], other_corp_example=[["10.20.3.4"]],
                      stray_corp_example=[["10.21.0.1"]])
    node = await api(WebhookLimits(allowed_hosts=("hooks.corp.example", "10.20.0.0/16")), dns)
    await node.register("https://hooks.corp.example/hook", expect=201)
    await node.register("https://other.corp.example/hook", expect=201)
    await node.register("https://10.20.9.9/hook", expect=201)
    _refused(await node.register("https://stray.corp.example/hook", expect=422), "10.21.0.1, a private address")
    _refused(await node.register("https://127.0.0.1/hook", expect=422), "a loopback address")
    assert len((await node.stored())[0]) == 3


async def test_a_name_rebound_to_loopback_after_registration_is_refused_at_delivery(api, receivers):  # noqa: F811
    receiver = await receivers()
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    dns = ScriptedDns(rebind_example=[["93.184.216.34"], ["127.0.0.1"]])  # public once, then loopback
    limits = WebhookLimits(allow_http=True, retry_base_ms=1, retry_cap_ms=10)
    node = await api(limits, dns)
    made = await node.register(f"http://rebind.example:{port}/hook", expect=201)
    receiver.secret = made["secret"]
    assert (await node.client.post("/v1/threads/log/messages", json={"body": "for the receiver"},
                                   headers=node.ops)).status == 201

    feed = FeedService(node.storage, SystemClock(), Directory(ACME), FeedHub())

    async def deliver(destinations: Destinations) -> None:
        async with aiohttp.ClientSession(connector=destinations.connector()) as session:
            worker = WebhookWorker(node.storage, feed, SystemClock(), limits, destinations=destinations,
                                   session=session)
            await worker.run_once()

    await deliver(node.destinations)
    assert dns.asked == ["rebind.example", "rebind.example"]  # registration, then the delivery's own lookup
    async with node.storage.transaction() as tx:
        hook = await tx.webhooks.get(int(made["id"]))
    assert (hook.status, hook.failures, hook.last_status) == ("active", 1, None)
    assert hook.last_error.startswith("not sent: rebind.example resolves to 127.0.0.1, a loopback address;")
    assert ALLOW_LIST_HINT in hook.last_error
    assert receiver.seen == [] and receiver.rejected == 0  # no request reached it

    # The same lookup with 127.0.0.1 allowed reaches the receiver: the refusal was all that stood between.
    allowed = Destinations.from_limits(replace(limits, allowed_hosts=("127.0.0.1",)), resolver=dns)

    async def delivered() -> bool:
        await deliver(allowed)
        return bool(receiver.accepted)

    await eventually(delivered)
    assert receiver.bodies() == ["for the receiver"]


# The node's own listeners, on a whole node whose allow list has 127.0.0.1 (as tests/cluster.py sets it).

@pytest.fixture
async def acme(tmp_path) -> ClusterNode:
    node = await start_node(tmp_path, ACME, TestCertificateAuthority())
    yield node
    await node.stop()


async def test_the_nodes_own_listeners_are_refused_even_with_loopback_allowed(acme, receivers):  # noqa: F811
    ops = await acme.create("agent", "ops", "Ops")
    for name, port in acme.ports.items():
        for url in (f"http://127.0.0.1:{port}/v1/agents", f"https://localhost:{port}/_agentnet/v1/transactions"):
            made = await acme.client(ops, "POST", "/v1/webhooks", {"url": url}, expect=422)
            _refused(made, f"this node's own {name} listener", "never points at the node itself")
    assert (await acme.client(ops, "GET", "/v1/webhooks"))["items"] == []
    receiver = await receivers()  # another port on the same address is an allowed internal receiver
    await acme.client(ops, "POST", "/v1/webhooks", {"url": receiver.url}, expect=201)


async def test_stored_urls_from_before_are_judged_at_every_delivery(acme):
    """Rows written before this rule (or by another process) pointing at the admin listener and
    at the metadata service: each attempt fails with the reason, without a request."""
    ops = await acme.create("agent", "ops", "Ops")
    await acme.admin("POST", "/v1/threads", {"name": "log", "title": "Log", "members": ["agent:ops"]})
    urls = [f"http://127.0.0.1:{acme.ports['admin']}/v1/agents", "http://169.254.169.254/latest/meta-data/",
            f"http://localhost:{acme.ports['client']}/v1/threads/log/messages"]
    async with acme.storage.transaction() as tx:
        owner = await tx.principals.get("agent", "ops")
        _floor, head = await tx.feed.bounds()
        ids = [(await tx.webhooks.create(owner.id, url=url, secret=generate_secret(),
                                         cursor=head, now=SystemClock().now_ms())).id for url in urls]
    await acme.client(ops, "POST", "/v1/threads/log/messages", {"body": "not for the node itself"}, expect=201)

    async def errors() -> list[str] | None:
        views = {h["id"]: h for h in (await acme.admin("GET", "/v1/webhooks"))["items"]}
        found = [views[str(i)]["last_error"] for i in ids]
        return found if all(found) else None

    admin_error, metadata_error, client_error = await eventually(errors)
    assert admin_error.startswith(f"not sent: 127.0.0.1:{acme.ports['admin']} is this node's own admin listener")
    assert metadata_error.startswith("not sent: 169.254.169.254 is a link-local address")
    assert client_error.startswith(f"not sent: localhost:{acme.ports['client']} resolves to 127.0.0.1, and port "
                                   f"{acme.ports['client']} there is this node's own client listener")
    messages = await acme.client(ops, "GET", "/v1/threads/log/messages")
    assert [m["body"] for m in messages["messages"]] == ["not for the node itself"]  # nothing posted by a webhook
