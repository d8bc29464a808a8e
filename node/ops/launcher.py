"""Node processes the way an operator runs them: `agentnet init` once, then `agentnet run` as a
child process, stopped with SIGTERM. The demo, the tests and the bench all start nodes through
this one launcher (each adds its own checks and reports on top).

`init` saves the node's admin token to `DATA_DIR/admin.token` (0600), and the launcher reads it
from there. Every node it starts listens on loopback only (federation included), on ports
fixed in its settings, so a restart reuses them and its peers' pinned endpoints stay valid.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from node.ops.arguments import ADMIN_TOKEN_FILE

if TYPE_CHECKING:
    import aiohttp

__all__ = ["SOURCE_ROOT", "LaunchFailed", "NodeProcess", "child_env", "entry_module", "free_ports"]

# The checkout (or installed tree) whose `node` package this is: where `python -m` finds it.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Below Linux's ephemeral range (32768-60999): a port the kernel hands to an outgoing
# connection between this check and the node's own bind would make the node fail to start.
_PORT_RANGE = (20000, 32000)


class LaunchFailed(Exception):
    """A node could not be made, did not start, or did not stop; the message says which."""


def free_ports(count: int) -> list[int]:
    """`count` different loopback ports that bind now (each node binds its own later)."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(*_PORT_RANGE)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def child_env(**settings: str) -> dict[str, str]:
    """This process's environment without its AGENTNET_* settings (the node's own file
    decides), with the federation listener on loopback, unbuffered output, and `settings` as
    AGENTNET_<NAME> variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTNET_")}
    env["AGENTNET_FEDERATION_HOST"] = "127.0.0.1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({f"AGENTNET_{name.upper()}": value for name, value in settings.items()})
    return env


def entry_module(code_root: Path) -> str:
    """The `agentnet` entry module of the checkout at `code_root`: `node.main.cli`, or
    `node.cli` in checkouts from before the rooms (the bench runs older code to compare)."""
    return "node.main.cli" if (code_root / "node" / "main" / "cli.py").exists() else "node.cli"


@dataclass(kw_only=True)
class NodeProcess:
    server: str
    data_dir: Path
    ports: dict[str, int]  # admin, client, federation
    log_path: Path
    code_root: Path = SOURCE_ROOT
    env: dict[str, str] = field(default_factory=child_env)
    run_argv: list[str] | None = None  # instead of `agentnet run` (the bench's stepped clock)
    proc: subprocess.Popen | None = None
    runs: int = 0
    init_output: str = ""

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
    def admin_token(self) -> str:
        """From `DATA_DIR/admin.token`, where `init` saved it (older checkouts only printed it,
        as the last line of their output)."""
        path = self.data_dir / ADMIN_TOKEN_FILE
        if path.is_file():
            return path.read_text("utf-8").strip()
        lines = self.init_output.strip().splitlines()
        return lines[-1] if lines else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LaunchFailed(f"{self.server} was never started")
        return self.proc.pid

    def _cli(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", entry_module(self.code_root), *argv]

    async def init(self, *, tls_ca_file: Path, database_url: str | None = None, display_name: str | None = None,
                   timeout: float = 120.0) -> str:
        """`agentnet init` in a child process; returns what it printed."""
        argv = self._cli("init", "--server-name", self.server, "--data-dir", str(self.data_dir),
                         "--admin-port", str(self.ports["admin"]), "--client-port", str(self.ports["client"]),
                         "--federation-port", str(self.ports["federation"]), "--public-endpoint", self.endpoint,
                         "--tls-ca-file", str(tls_ca_file))
        if database_url:
            argv += ["--database-url", database_url]
        if display_name:
            argv += ["--display-name", display_name]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, cwd=self.code_root, env=self.env)
        try:
            async with asyncio.timeout(timeout):
                output = (await proc.communicate())[0].decode("utf-8", errors="replace")
        except BaseException:  # cancelled (Ctrl-C) or too slow: leave no half-made node running
            if proc.returncode is None:
                proc.kill()
                await asyncio.shield(proc.wait())
            raise
        if proc.returncode != 0:
            raise LaunchFailed(f"agentnet init {self.server} exited {proc.returncode}:\n{output}")
        self.init_output = output
        if not self.admin_token.startswith("anadm_"):
            raise LaunchFailed(f"agentnet init {self.server} left no admin token:\n{output}")
        return output

    def spawn(self) -> float:
        """Start `agentnet run` (its output appended to the log, owner-only); returns the
        monotonic time of the start."""
        if self.running:
            raise LaunchFailed(f"{self.server} is already running (pid {self.pid})")
        self.runs += 1
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            log.write(f"=== run {self.runs} of {self.server} ===\n".encode())
            log.flush()
            spawned = time.monotonic()
            self.proc = subprocess.Popen(self.run_argv or self._cli("run", "--data-dir", str(self.data_dir)),
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.code_root, env=self.env)
        return spawned

    async def wait_ready(self, http: aiohttp.ClientSession, *, timeout: float = START_TIMEOUT_S) -> None:
        """Until the admin listener answers `/v1/status` with this node's name."""
        from node.client.http import NO_RETRIES, AgentNetError, NodeHttp

        # Two seconds a try: something else may hold the port and never answer.
        api = NodeHttp(self.admin_url, self.admin_token, session=http, timeout=2, retry=NO_RETRIES)
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise LaunchFailed(f"{self.server} exited with {code} while starting")
            try:
                answered, status = await api.answer("GET", "/v1/status")
                if answered == 200 and isinstance(status, dict) and status.get("server_name") == self.server:
                    return
                last = status
            except AgentNetError as e:
                last = e
            if time.monotonic() > deadline:
                raise LaunchFailed(f"{self.server} did not answer /v1/status within {timeout:.0f} s: {last!r}")
            await asyncio.sleep(0.02)

    async def start(self, http: aiohttp.ClientSession, *, timeout: float = START_TIMEOUT_S) -> float:
        """Spawn and wait until ready; returns the monotonic time of the spawn."""
        spawned = self.spawn()
        await self.wait_ready(http, timeout=timeout)
        return spawned

    async def stop(self, *, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (after SIGCONT, so a paused node can act on it) and wait; returns the exit code
        (0: a clean stop). A node that ignores it for `timeout` is killed, and that fails."""
        if self.proc is None:
            raise LaunchFailed(f"{self.server} was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
            raise LaunchFailed(f"{self.server} ignored SIGTERM for {timeout:.0f} s (killed)") from None

    async def kill(self) -> int:
        """SIGKILL: a crash, no clean-up in the node. Returns the exit code (-9)."""
        if self.proc is None:
            raise LaunchFailed(f"{self.server} was never started")
        if self.proc.poll() is None:
            self.proc.kill()
        return await asyncio.to_thread(self.proc.wait)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets and does nothing until `resume`."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 10.0) -> int | None:
        """For teardown: end the process whatever state it is in (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        return "\n".join(text.splitlines()[-lines:])
