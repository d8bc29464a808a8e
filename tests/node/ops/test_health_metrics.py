"""Health, readiness and Prometheus metrics: probes answer without a token on the admin and
client listeners (not on the federation one), readiness fails with the database or a worker,
and `/metrics` (admin token only) shows what a two-node exchange did."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from node.http.openapi import add_endpoints
from node.ops.health import WorkerMonitor, health_endpoints
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, acme_and_globex, open_rollout  # noqa: F401
from tests.tls_fixtures import TestCertificateAuthority

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


async def _get(node: ClusterNode, listener: str, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with node.http.get(f"http://127.0.0.1:{node.ports[listener]}{path}", headers=headers) as resp:
        return resp.status, await resp.text()


async def _metrics(node: ClusterNode) -> dict[str, list]:
    status, text = await _get(node, "admin", "/metrics", node.admin_token)
    assert status == 200, text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(families: dict[str, list], sample: str, **labels: str) -> float:
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    return sum(s.value for s in families.get(family, [])
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture
async def acme(tmp_path):
    node = await start_node(tmp_path, ACME, TestCertificateAuthority())
    yield node
    await node.stop()


async def test_probes_answer_without_a_token_on_admin_and_client_only(acme):
    for listener in ("admin", "client"):
        status, body = await _get(acme, listener, "/healthz")
        assert (status, body) == (200, '{"status": "ok"}')
        status, body = await _get(acme, listener, "/readyz")
        assert status == 200, body
        assert '"database": "ok"' in body and '"workers": "ok"' in body
    federation_routes = {r.canonical for r in acme.parts.federation_app.router.resources()}
    assert not federation_routes & {"/healthz", "/readyz", "/metrics"}
    assert "/metrics" not in {r.canonical for r in acme.parts.client_app.router.resources()}


async def test_readiness_names_a_worker_that_is_not_running(storage, aiohttp_client):
    monitor = WorkerMonitor()
    stop = asyncio.Event()
    run = monitor.watch("delivery", stop.wait)
    app = web.Application()
    add_endpoints(app, health_endpoints(storage, monitor))
    client = await aiohttp_client(app)
    resp = await client.get("/readyz")
    assert resp.status == 503
    answer = await resp.json()
    assert answer["error"]["code"] == "not_ready"
    assert answer["error"]["checks"] == {"database": "ok", "workers": "not running: delivery"}
    task = asyncio.create_task(run())
    await eventually(lambda: _status(client, "/readyz", 200))
    stop.set()
    await task
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200


async def _status(client, path: str, expected: int) -> bool:
    return (await client.get(path)).status == expected


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server that can go away
async def test_readiness_fails_when_the_database_is_gone(tmp_path, database_url):
    from tests.conftest import _drop_postgres_database

    node = await start_node(tmp_path, ACME, TestCertificateAuthority(), database_url=database_url)
    try:
        assert (await _get(node, "client", "/readyz"))[0] == 200
        await _drop_postgres_database(database_url)
        for listener in ("admin", "client"):
            status, body = await _get(node, listener, "/readyz")
            assert status == 503, body
            assert '"database": "failed"' in body and "not_ready" in body
            assert (await _get(node, listener, "/healthz"))[0] == 200  # alive, just not ready
    finally:
        await node.stop()


async def test_metrics_need_the_admin_token(acme):
    agent = await acme.create("agent", "ops", "Ops")
    assert (await _get(acme, "admin", "/metrics"))[0] == 401
    assert (await _get(acme, "admin", "/metrics", agent))[0] == 401
    assert (await _get(acme, "client", "/metrics", agent))[0] == 404
    status, text = await _get(acme, "admin", "/metrics", acme.admin_token)
    assert status == 200 and "agentnet_http_requests_total" in text


async def test_metrics_after_a_two_node_exchange(acme_and_globex):  # noqa: F811
    acme, globex = acme_and_globex
    tokens = await open_rollout(acme, globex)
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": "first"}, expect=201)
    await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "second"}, expect=201)

    async def both_sides_delivered():
        at_acme, at_globex = await _metrics(acme), await _metrics(globex)
        return (_value(at_acme, "agentnet_federation_events_sent_total", peer=GLOBEX, result="delivered") > 0
                and _value(at_globex, "agentnet_federation_events_received_total", result="accepted") > 0
                and _value(at_acme, "agentnet_federation_events_received_total", result="accepted") > 0
                and _value(at_acme, "agentnet_outbox_queue_depth", peer=GLOBEX) == 0)

    await eventually(both_sides_delivered)
    families = await _metrics(acme)
    assert _value(families, "agentnet_http_requests_total", listener="client", method="POST", route=MESSAGES.replace(
        NETWORK, "{network}").replace(THREAD, "{thread}"), status="201") >= 1
    assert _value(families, "agentnet_http_requests_total", listener="federation", method="PUT",
                  route="/_agentnet/v1/transactions/{txn_id}", status="200") >= 1
    assert _value(families, "agentnet_http_requests_total", listener="admin", route="/metrics", status="200") >= 1
    routes = {s.labels["route"] for s in families["agentnet_http_requests"]}
    assert not any(NETWORK in r or THREAD in r for r in routes), routes  # templates, never raw paths
    assert _value(families, "agentnet_federation_delivery_latency_seconds_count", peer=GLOBEX) >= 1
    assert _value(families, "agentnet_http_request_duration_seconds_count", listener="client") >= 1
    assert _value(families, "agentnet_feed_head_position") > 0

    # The queue for a stopped peer grows, and drains once it is back.
    await globex.stop()
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": "while globex is down"}, expect=201)

    async def queued() -> bool:
        return _value(await _metrics(acme), "agentnet_outbox_queue_depth", peer=GLOBEX) >= 1

    await eventually(queued)
    await globex.start()

    async def drained() -> bool:
        return _value(await _metrics(acme), "agentnet_outbox_queue_depth", peer=GLOBEX) == 0

    await eventually(drained, timeout=30)


async def test_open_streams_and_webhook_backlog_are_gauges(acme):
    agent = await acme.create("agent", "ops", "Ops")
    url = f"http://127.0.0.1:{acme.ports['client']}/v1/events/stream"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {agent}"}) as stream:
            assert (await stream.content.readline()).startswith(b"retry:")
            assert _value(await _metrics(acme), "agentnet_event_streams_open") == 1

    async def closed() -> bool:
        return _value(await _metrics(acme), "agentnet_event_streams_open") == 0

    await eventually(closed)
    families = await _metrics(acme)
    assert _value(families, "agentnet_http_requests_total", listener="client", route="/v1/events/stream") == 1
    assert "agentnet_webhook_backlog" in families and "agentnet_outbox_queue_depth" in families
