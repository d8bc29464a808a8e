"""A node's two local listeners on a fresh database, with a clock the test controls."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from node.basics.limits import ClientLimits
from node.basics.rate_limit import PostRateLimiter
from node.feed.api import feed_endpoints
from node.feed.hub import FeedHub
from node.feed.service import FeedService
from node.main.listeners import build_admin_app, build_client_app
from node.workspace.bootstrap import bootstrap_company
from node.workspace.client_service import ClientService
from node.workspace.directory import Directory

SERVER = "acme.example"


class FakeClock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def now_ms(self) -> int:
        self.now += 1
        return self.now


@dataclass
class Node:
    admin: object  # aiohttp TestClient for the admin listener
    client: object  # aiohttp TestClient for the client listener
    admin_token: str
    storage: object
    clock: FakeClock
    hub: FeedHub

    def as_admin(self) -> dict:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def create(self, kind: str, handle: str, **extra) -> str:
        plural = "agents" if kind == "agent" else "people"
        resp = await self.admin.post(
            f"/v1/{plural}", json={"handle": handle, "display_name": handle.title(), **extra},
            headers=self.as_admin(),
        )
        assert resp.status == 201, await resp.text()
        return (await resp.json())["token"]


# Short timings so stream tests run in a fraction of a second; a generous post rate so only
# the rate-limit tests meet it.
TEST_LIMITS = ClientLimits(post_rate_per_s=1000.0, post_burst=1000, stream_heartbeat_s=0.5,
                           stream_write_timeout_s=1.0, token_recheck_s=0.3, feed_poll_s=0.2)


@pytest.fixture
async def node(storage, aiohttp_client) -> Node:
    return await start_local_node(storage, aiohttp_client, TEST_LIMITS)


def client_parts(storage, clock, directory, limits: ClientLimits = ClientLimits()) -> dict:
    """The client listener's service and post limiter, as the assembly makes them."""
    return {"service": ClientService(storage, clock, directory),
            "limiter": PostRateLimiter(rate_per_s=limits.post_rate_per_s, burst=limits.post_burst)}


async def start_local_node(storage, aiohttp_client, limits: ClientLimits) -> Node:
    """The admin and client listeners as `node.main.assembly` wires them, without federation."""
    clock = FakeClock()
    token = await bootstrap_company(storage, server_name=SERVER, display_name="Acme", now=clock.now_ms())
    directory = Directory(SERVER)
    hub = FeedHub()
    storage.on_feed_commit(hub.notify)
    feed = FeedService(storage, clock, directory, hub, poll_interval_s=limits.feed_poll_s)
    limiter = PostRateLimiter(rate_per_s=limits.post_rate_per_s, burst=limits.post_burst)
    admin = await aiohttp_client(build_admin_app(storage, clock, directory, max_body_bytes=64 * 1024,
                                                 on_tokens_changed=hub.tokens_changed))
    client_app = build_client_app(storage, clock, directory, service=ClientService(storage, clock, directory),
                                  limiter=limiter, max_body_bytes=64 * 1024,
                                  extra=feed_endpoints(feed, storage, clock, limits))
    client_app.on_shutdown.append(lambda _app: _close(hub))
    client = await aiohttp_client(client_app)
    return Node(admin, client, token, storage, clock, hub)


async def _close(hub: FeedHub) -> None:
    hub.close()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def pair(tmp_path):
    """Acme and Globex as two real nodes over TLS, certificates from one test CA; no network yet."""
    from tests.cluster import start_node
    from tests.tls_fixtures import TestCertificateAuthority

    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, "acme.example", ca)
    globex = await start_node(tmp_path, "globex.example", ca)
    yield acme, globex
    await globex.stop()
    await acme.stop()



@pytest.fixture
async def three(tmp_path):
    """Acme, Globex and Initech as three real nodes over TLS (`test_lifecycle.incident` joins them)."""
    from tests.cluster import start_node
    from tests.tls_fixtures import TestCertificateAuthority

    ca = TestCertificateAuthority()
    nodes = [await start_node(tmp_path, server, ca)
             for server in ("acme.example", "globex.example", "initech.example")]
    yield nodes
    for node in reversed(nodes):
        await node.stop()
