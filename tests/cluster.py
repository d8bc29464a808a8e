"""Complete nodes in one test process: real sockets, federation over real TLS (a test CA), the
real delivery and catch-up workers. Every byte a node sends to peers (requests it makes and
answers it gives) is captured for the privacy tests.

`start_node` binds its sockets first, so a restarted node gets the same ports back and its
peers' pinned endpoints stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from federation.keys import SigningKey
from node.basics.clock import SystemClock
from node.basics.limits import FederationLimits, WebhookLimits
from node.federation.tls import PeerTrust, server_ssl_context
from node.http.connection_guard import ConnectionGuard, ConnectionLimits, GuardedSite
from node.main.assembly import NodeParts, assemble, record_own_key
from node.workspace.bootstrap import bootstrap_company
from storage.storage import Storage
from tests.tls_fixtures import TestCertificateAuthority

__all__ = ["TEST_WEBHOOK_LIMITS", "ClusterNode", "eventually", "start_node"]

# Receivers in tests are plain-http servers on 127.0.0.1, allowed explicitly as an operator
# would an internal receiver (the node's own ports stay refused); retries and disabling take
# milliseconds instead of hours.
TEST_WEBHOOK_LIMITS = WebhookLimits(allow_http=True, allowed_hosts=("127.0.0.1",), timeout_s=5.0,
                                    disable_after_failures=3, disable_after_ms=200, retry_base_ms=20,
                                    retry_cap_ms=200, poll_s=0.2)


def _bound_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@dataclass
class ClusterNode:
    server: str
    database_url: str
    data_dir: Path
    key: SigningKey
    admin_token: str
    ports: dict[str, int]
    ca: TestCertificateAuthority
    tls: tuple[Path, Path] | None = None
    sent: list[bytes] = field(default_factory=list)  # every byte sent to peers, as captured
    storage: Storage | None = None
    parts: NodeParts | None = None
    _stack: contextlib.AsyncExitStack | None = None
    http: aiohttp.ClientSession | None = None
    webhook_limits: WebhookLimits = TEST_WEBHOOK_LIMITS
    federation_limits: FederationLimits = FederationLimits()  # what each peer may make the node do
    # The production defaults, so every federation test runs through the guard as deployed.
    federation_connections: ConnectionLimits = ConnectionLimits()
    client_connections: ConnectionLimits = ConnectionLimits(per_address=None)
    guards: dict[str, ConnectionGuard] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.ports['federation']}"

    async def admin(self, method: str, path: str, body: Any = None, *, expect: int | None = None) -> Any:
        return await self._call(f"http://127.0.0.1:{self.ports['admin']}", self.admin_token, method, path, body, expect)

    async def client(self, token: str, method: str, path: str, body: Any = None, *, expect: int | None = None,
                     headers: dict[str, str] | None = None) -> Any:
        return await self._call(f"http://127.0.0.1:{self.ports['client']}", token, method, path, body, expect,
                                headers)

    async def _call(self, base: str, token: str, method: str, path: str, body: Any, expect: int | None,
                    headers: dict[str, str] | None = None) -> Any:
        async with self.http.request(method, base + path, json=body,
                                     headers={"Authorization": f"Bearer {token}", **(headers or {})}) as resp:
            data = await resp.json()
            if expect is not None:
                assert resp.status == expect, (resp.status, data)
            elif resp.status >= 400:
                raise AssertionError(f"{method} {path} -> {resp.status} {data}")
            return data

    async def upload(self, token: str, name: str, data: bytes, content_type: str = "text/plain", *,
                     expect: int = 201) -> Any:
        """POST /v1/files: the raw bytes, typed by Content-Type."""
        async with self.http.post(f"http://127.0.0.1:{self.ports['client']}/v1/files", params={"name": name},
                                  data=io.BytesIO(data) if len(data) > 1024 * 1024 else data,
                                  headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": content_type}) as resp:
            answer = await resp.json()
            assert resp.status == expect, (resp.status, answer)
            return answer

    async def download(self, token: str, path: str) -> tuple[int, Any, bytes]:
        """GET a file: (status, headers, body bytes)."""
        async with self.http.get(f"http://127.0.0.1:{self.ports['client']}{path}",
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, resp.headers, await resp.read()

    async def create(self, kind: str, handle: str, display_name: str, **extra: Any) -> str:
        plural = {"agent": "agents", "person": "people", "app": "apps"}[kind]
        made = await self.admin("POST", f"/v1/{plural}", {"handle": handle, "display_name": display_name, **extra})
        return made["token"]

    async def start(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        try:
            await self._start(self._stack)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        sockets = {name: _bound_socket(self.ports.get(name, 0)) for name in ("admin", "client", "federation")}
        for name, sock in sockets.items():
            self.ports[name] = sock.getsockname()[1]
            stack.callback(sock.close)
        self.storage = await Storage.open(self.database_url)
        stack.push_async_callback(self.storage.close)
        await record_own_key(self.storage, self.key, now=SystemClock().now_ms())
        if self.tls is None:  # a restart keeps its certificate
            self.tls = self.ca.issue(self.server, self.data_dir)
            self.ca.write_ca_bundle(self.data_dir / "ca.pem")
        cert, key = self.tls
        bundle = self.data_dir / "ca.pem"
        trace = aiohttp.TraceConfig()

        async def on_chunk(_session, _ctx, params) -> None:
            self.sent.append(bytes(params.chunk))

        async def on_start(_session, _ctx, params) -> None:
            self.sent.append(str(params.url).encode() + repr(dict(params.headers)).encode())

        trace.on_request_chunk_sent.append(on_chunk)
        trace.on_request_start.append(on_start)
        session = await stack.enter_async_context(aiohttp.ClientSession(trace_configs=[trace]))
        self.http = await stack.enter_async_context(aiohttp.ClientSession())
        self.parts = assemble(server_name=self.server, endpoint=self.endpoint, signing_key=self.key,
                              storage=self.storage, clock=SystemClock(), session=session,
                              trust=PeerTrust(bundle), certificate_file=cert,
                              webhook_limits=replace(self.webhook_limits, own_listeners=tuple(self.ports.items())),
                              federation_limits=self.federation_limits,
                              web_url=f"http://127.0.0.1:{self.ports['client']}",
                              admin_url=f"http://127.0.0.1:{self.ports['admin']}")

        @web.middleware
        async def capture(request: web.Request, handler):
            response = await handler(request)
            if isinstance(response, web.Response) and response.body is not None:
                self.sent.append(bytes(response.body))
            return response

        self.parts.federation_app.middlewares.insert(0, capture)
        tls = server_ssl_context(cert, key)
        metrics = self.parts.metrics
        self.guards = {
            "client": ConnectionGuard("client", self.client_connections, on_shed=metrics.connection_shed),
            "federation": ConnectionGuard("federation", self.federation_connections, ssl_context=tls,
                                          on_shed=metrics.connection_shed),
        }
        for name, app in (("admin", self.parts.admin_app), ("client", self.parts.client_app),
                          ("federation", self.parts.federation_app)):
            guard = self.guards.get(name)
            if guard is not None:
                guard.protect(app)
                metrics.watch_connections(name, lambda g=guard: g.open_connections)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            if guard is not None:
                await GuardedSite(runner, guard, sock=sockets[name]).start()
            else:
                await web.SockSite(runner, sockets[name]).start()
        tasks = [asyncio.create_task(run(), name=name) for name, run in self.parts.background()]

        async def stop_tasks() -> None:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        stack.push_async_callback(stop_tasks)

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None


async def start_node(tmp_path: Path, server: str, ca: TestCertificateAuthority, database_url: str | None = None,
                     display_name: str | None = None, federation_limits: FederationLimits = FederationLimits(),
                     federation_connections: ConnectionLimits | None = None,
                     client_connections: ConnectionLimits | None = None) -> ClusterNode:
    data_dir = tmp_path / server.replace(":", "_")
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{data_dir / 'node.db'}"
    storage = await Storage.open(url)
    try:
        token = await bootstrap_company(storage, server_name=server, display_name=display_name or server,
                                        now=SystemClock().now_ms())
    finally:
        await storage.close()
    node = ClusterNode(server=server, database_url=url, data_dir=data_dir, key=SigningKey.generate(),
                       admin_token=token, ports={}, ca=ca, federation_limits=federation_limits,
                       federation_connections=federation_connections or ConnectionLimits(),
                       client_connections=client_connections or ConnectionLimits(per_address=None))
    await node.start()
    return node


async def eventually(check, *, timeout: float = 15.0, interval: float = 0.05,
                     retry_on: tuple[type[BaseException], ...] = (AssertionError,)) -> Any:
    """Poll an async `check` until it returns a truthy value or raise with the last failure."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = await check()
            if result:
                return result
            last = result
        except retry_on as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
