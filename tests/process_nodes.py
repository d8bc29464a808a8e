"""Nodes as separate OS processes, the way an operator runs them: `agentnet init`, then
`agentnet run` in its own process (`node.ops.launcher`, as the demo and the bench start
them), talking to the other nodes over real HTTPS.

Plain helpers, no pytest: a fixture wraps `ProcessCluster` and calls `close()` in its
teardown, which ends every process it started (SIGTERM, then SIGKILL) whatever happened.

Each node gets free ports on 127.0.0.1 (fixed in its settings, so a restart reuses them and
the peers' pinned endpoints stay valid), a certificate from the cluster's shared
`TestCertificateAuthority` in place of the self-signed one `init` wrote (every node trusts
that CA through `tls_ca_file`), and a log file that collects the output of every run. Errors
raised here (and by `ProcessCluster.eventually` and `show_logs_on_failure`) carry the tail of
every node's log, so a failing test shows what the nodes said.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from node.client.http import NO_RETRIES, AgentNetError, NodeHttp
from node.ops.launcher import SOURCE_ROOT, LaunchFailed, NodeProcess, free_ports
from tests.cluster import eventually
from tests.tls_fixtures import TestCertificateAuthority

__all__ = ["REPO_ROOT", "NodeDown", "ProcessCluster", "ProcessNode", "free_port"]

REPO_ROOT = SOURCE_ROOT
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 40


def free_port() -> int:
    """A loopback port that binds now (the node binds it later, in its own process)."""
    return free_ports(1)[0]


class NodeDown(AssertionError):
    """A node process is not running (or never answered) when the test needed it."""


@dataclass(kw_only=True)
class ProcessNode(NodeProcess):
    http: aiohttp.ClientSession
    cluster: ProcessCluster

    # --- process control: the launcher's, failing with every node's log -------------------

    async def start(self, http: aiohttp.ClientSession | None = None, *,  # type: ignore[override]
                    timeout: float = START_TIMEOUT_S) -> float:
        """`agentnet run` as a child process; returns once the admin `/v1/status` answers."""
        try:
            return await super().start(http or self.http, timeout=timeout)
        except LaunchFailed as e:
            raise NodeDown(str(e) + self.cluster.logs()) from None

    async def stop(self, *, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code (0 for a clean stop)."""
        try:
            return await super().stop(timeout=timeout)
        except LaunchFailed as e:
            raise NodeDown(str(e) + self.cluster.logs()) from None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return super().log_tail(lines)

    # --- HTTP ------------------------------------------------------------------------------

    async def admin(self, method: str, path: str, body: Any = None, *, expect: int | None = None) -> Any:
        return await self._call(self.admin_url, self.admin_token, method, path, body, expect)

    async def client(self, token: str, method: str, path: str, body: Any = None, *,
                     expect: int | None = None) -> Any:
        return await self._call(self.client_url, token, method, path, body, expect)

    async def _call(self, base: str, token: str, method: str, path: str, body: Any, expect: int | None) -> Any:
        status, data = await NodeHttp(base, token, session=self.http, retry=NO_RETRIES).answer(
            method, path, json_body=body)
        if expect is not None and status != expect:
            raise AssertionError(f"{self.server}: {method} {path} -> {status} (expected {expect}) {data}")
        if expect is None and status >= 400:
            raise AssertionError(f"{self.server}: {method} {path} -> {status} {data}")
        return data

    async def create(self, kind: str, handle: str, display_name: str, **extra: Any) -> str:
        """Create an agent or a person; returns its token."""
        plural = "agents" if kind == "agent" else "people"
        made = await self.admin("POST", f"/v1/{plural}", {"handle": handle, "display_name": display_name, **extra},
                                expect=201)
        return made["token"]


class ProcessCluster:
    """Node processes sharing one test CA; `close()` ends them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = TestCertificateAuthority()
        self.certs_dir = root / "certs"
        self.certs_dir.mkdir(parents=True, exist_ok=True)
        self.ca_bundle = self.ca.write_ca_bundle(root / "ca.pem")
        self.nodes: dict[str, ProcessNode] = {}
        self.http: aiohttp.ClientSession | None = None
        self._ports: set[int] = set()

    def _new_port(self) -> int:
        """A free port no other node of this cluster was given (they are picked before binding)."""
        while (port := free_port()) in self._ports:
            pass
        self._ports.add(port)
        return port

    def node(self, server: str, data_dir: Path, ports: dict[str, int], **extra: Any) -> ProcessNode:
        """A node of this cluster (its process not started), logging to ROOT/<data dir name>.log."""
        assert self.http is not None, "open() the cluster first"
        node = ProcessNode(server=server, data_dir=data_dir, ports=ports, log_path=self.root / f"{data_dir.name}.log",
                           http=self.http, cluster=self, **extra)
        self.nodes[server] = node
        return node

    async def open(self) -> ProcessCluster:
        # No keep-alive: a killed node must not leave dead pooled connections behind.
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                          timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def close(self) -> None:
        for node in self.nodes.values():
            node.terminate()
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def init_node(self, server: str, *, database_url: str | None = None,
                        display_name: str | None = None) -> ProcessNode:
        """`agentnet init` in a child process, then swap in a certificate from the test CA."""
        data_dir = self.root / server.replace(":", "_")
        ports = {name: self._new_port() for name in ("admin", "client", "federation")}
        node = self.node(server, data_dir, ports)
        try:
            await node.init(tls_ca_file=self.ca_bundle, database_url=database_url, display_name=display_name)
        except LaunchFailed as e:
            raise AssertionError(str(e)) from None
        cert, key = self.ca.issue(server, self.certs_dir)
        os.replace(cert, data_dir / "tls.crt")
        os.replace(key, data_dir / "tls.key")
        return node

    async def start_node(self, server: str, **init: Any) -> ProcessNode:
        node = await self.init_node(server, **init)
        await node.start()
        return node

    async def start_nodes(self, *specs: tuple[str, dict[str, Any]]) -> list[ProcessNode]:
        """Init and start several nodes at once (each start costs about a second of imports)."""
        return list(await asyncio.gather(*(self.start_node(server, **init) for server, init in specs)))

    def logs(self) -> str:
        parts = [f"\n----- {node.server} ({node.log_path}, last {LOG_TAIL_LINES} lines, "
                 f"{'running' if node.running else 'not running'}) -----\n{node.log_tail()}"
                 for node in self.nodes.values()]
        return "".join(parts)

    async def eventually(self, check: Callable[[], Awaitable[Any]], what: str, *, timeout: float = 15.0,
                         interval: float = 0.05) -> Any:
        """Poll `check` until it returns something truthy; fail with the nodes' logs."""
        try:
            return await eventually(check, timeout=timeout, interval=interval,
                                    retry_on=(AssertionError, aiohttp.ClientError, AgentNetError))
        except AssertionError as e:
            raise AssertionError(f"{what}: {e}" + self.logs()) from None

    @contextlib.asynccontextmanager
    async def show_logs_on_failure(self) -> AsyncIterator[None]:
        """Re-raise a failure in the block with every node's log tail appended (once)."""
        try:
            yield
        except Exception as e:
            if "\n----- " in str(e):  # already carries the logs
                raise
            raise AssertionError(f"{type(e).__name__}: {e}" + self.logs()) from e
