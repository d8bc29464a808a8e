"""Nodes as separate OS processes, the way an operator runs them: `agentnet init`, then
`agentnet run` in its own process, talking to the other nodes over real HTTPS.

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
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.cluster import eventually
from tests.tls_fixtures import TestCertificateAuthority

__all__ = ["NodeDown", "ProcessCluster", "ProcessNode", "free_port"]

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 40


# Below Linux's ephemeral range (32768-60999): a port the kernel hands to an outgoing
# connection between this check and the node's own bind would make the node fail to start.
_PORT_RANGE = (20000, 32000)


def free_port() -> int:
    """A loopback port that binds now (the node binds it later, in its own process)."""
    while True:
        port = random.randrange(*_PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def _child_env() -> dict[str, str]:
    """The test's environment without any AGENTNET_* setting (the node's TOML file decides),
    plus the federation listener on loopback only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTNET_")}
    env["AGENTNET_FEDERATION_HOST"] = "127.0.0.1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class NodeDown(AssertionError):
    """A node process is not running (or never answered) when the test needed it."""


@dataclass
class ProcessNode:
    server: str
    data_dir: Path
    log_path: Path
    ports: dict[str, int]
    admin_token: str
    init_output: str
    http: aiohttp.ClientSession
    cluster: ProcessCluster
    proc: subprocess.Popen | None = None
    runs: int = 0

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.ports['federation']}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['client']}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- process control -------------------------------------------------------------------

    async def start(self, *, timeout: float = START_TIMEOUT_S) -> None:
        """`agentnet run` as a child process; returns once the admin `/v1/status` answers."""
        if self.running:
            raise RuntimeError(f"{self.server} is already running (pid {self.proc.pid})")
        self.runs += 1
        with open(self.log_path, "ab") as log:
            log.write(f"=== run {self.runs} of {self.server} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.main.cli", "run", "--data-dir", str(self.data_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT, env=_child_env(),
            )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if self.proc.poll() is not None:
                raise NodeDown(f"{self.server} exited with {self.proc.returncode} while starting"
                               + self.cluster.logs())
            try:
                status = await self.admin("GET", "/v1/status")
                if status.get("server_name") == self.server:
                    return
                last = AssertionError(f"unexpected status {status}")
            except (aiohttp.ClientError, AssertionError) as e:
                last = e
            if time.monotonic() > deadline:
                raise NodeDown(f"{self.server} did not answer /v1/status within {timeout}s: {last!r}"
                               + self.cluster.logs())
            await asyncio.sleep(0.05)

    async def stop(self, *, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code (0 for a clean stop)."""
        if self.proc is None:
            raise RuntimeError(f"{self.server} was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
            raise NodeDown(f"{self.server} ignored SIGTERM for {timeout}s (killed)" + self.cluster.logs()) from None

    async def kill(self) -> int:
        """SIGKILL: a crash, no clean-up in the node. Returns the exit code (-9)."""
        if self.proc is None:
            raise RuntimeError(f"{self.server} was never started")
        if self.proc.poll() is None:
            self.proc.kill()
        return await asyncio.to_thread(self.proc.wait)

    def terminate(self) -> None:
        """For teardown: end the process whatever state it is in (SIGTERM, then SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        return "\n".join(text.splitlines()[-lines:])

    # --- HTTP ------------------------------------------------------------------------------

    async def admin(self, method: str, path: str, body: Any = None, *, expect: int | None = None) -> Any:
        return await self._call(self.admin_url, self.admin_token, method, path, body, expect)

    async def client(self, token: str, method: str, path: str, body: Any = None, *,
                     expect: int | None = None) -> Any:
        return await self._call(self.client_url, token, method, path, body, expect)

    async def _call(self, base: str, token: str, method: str, path: str, body: Any, expect: int | None) -> Any:
        async with self.http.request(method, base + path, json=body,
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
            text = await resp.text()
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = text
            if expect is not None and resp.status != expect:
                raise AssertionError(f"{self.server}: {method} {path} -> {resp.status} (expected {expect}) {data}")
            if expect is None and resp.status >= 400:
                raise AssertionError(f"{self.server}: {method} {path} -> {resp.status} {data}")
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
        argv = [sys.executable, "-m", "node.main.cli", "init", "--server-name", server, "--data-dir", str(data_dir),
                "--admin-port", str(ports["admin"]), "--client-port", str(ports["client"]),
                "--federation-port", str(ports["federation"]),
                "--public-endpoint", f"https://127.0.0.1:{ports['federation']}",
                "--tls-ca-file", str(self.ca_bundle)]
        if database_url:
            argv += ["--database-url", database_url]
        if display_name:
            argv += ["--display-name", display_name]
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=REPO_ROOT,
                                       env=_child_env(), timeout=120, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise AssertionError(f"agentnet init {server} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        token = done.stdout.strip().splitlines()[-1]
        if not token.startswith("anadm_"):
            raise AssertionError(f"no admin token on init's last line:\n{done.stdout}")
        cert, key = self.ca.issue(server, self.certs_dir)
        os.replace(cert, data_dir / "tls.crt")
        os.replace(key, data_dir / "tls.key")
        node = ProcessNode(server=server, data_dir=data_dir, log_path=self.root / f"{data_dir.name}.log",
                           ports=ports, admin_token=token, init_output=done.stdout, http=self.http, cluster=self)
        self.nodes[server] = node
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
                                    retry_on=(AssertionError, aiohttp.ClientError))
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
