"""Node processes for the benchmarks, the way an operator runs them.

Each node is `agentnet init` then `agentnet run` in its own OS process, with its federation
listener on loopback over TLS. TLS uses the self-signed certificate `init` writes; once every
node of a cluster is initialised their certificates are concatenated into one bundle that
every node names as `tls_ca_file`, so peers verify each other exactly as two companies that
swapped certificates would. Nothing from the test suite (or trustme) is needed.

The post rate limit and the per-peer federation limits are lifted (`AGENTNET_POST_*`,
`AGENTNET_FEDERATION_*`) so the harness measures the node, not the limiters, and logs are at
WARNING so the node does not spend the run formatting INFO lines. Everything else is the
node's default.

On PostgreSQL each node gets a database of its own, created here and dropped on close.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiohttp

from node.client.http import NO_RETRIES, AgentNetError, NodeHttp
from node.ops.launcher import LaunchFailed, NodeProcess, free_ports

__all__ = [
    "POSTGRES_ADMIN_URL",
    "BenchCluster",
    "BenchNode",
    "NodeFailed",
    "free_port",
    "proc_cpu_seconds",
    "proc_rss_bytes",
    "profile_into",
    "py_spy",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("AGENTNET_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
# The limiter's ceiling (node/basics/config.py allows up to 100,000): high enough never to bite.
_NODE_ENV = {
    "AGENTNET_FEDERATION_HOST": "127.0.0.1",
    "AGENTNET_POST_RATE_PER_SECOND": "100000",
    "AGENTNET_POST_BURST": "100000",
    "AGENTNET_FEDERATION_REQUESTS_PER_SECOND": "1000000",
    "AGENTNET_FEDERATION_REQUESTS_BURST": "1000000",
    "AGENTNET_FEDERATION_SUBMISSIONS_PER_SECOND": "1000000",
    "AGENTNET_FEDERATION_SUBMISSIONS_BURST": "1000000",
    "AGENTNET_FEDERATION_HOST_EVENTS_PER_SECOND": "1000000",
    "AGENTNET_FEDERATION_HOST_EVENTS_BURST": "1000000",
    "AGENTNET_FEDERATION_BYTES_PER_SECOND": "1073741824",
    "AGENTNET_FEDERATION_BYTES_BURST": "1073741824",
    "AGENTNET_LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
}


# Where `python -m bench.run --profile DIR` wants py-spy profiles of every node process.
_profile_dir: Path | None = None


def py_spy() -> str | None:
    """py-spy beside this interpreter (a venv's bin/, not always on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_into(directory: Path | None) -> None:
    """Record each node process with py-spy (`pip install -e '.[bench]'`) into `directory`:
    one speedscope file per node process, written when the node stops."""
    global _profile_dir
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    _profile_dir = directory


class NodeFailed(RuntimeError):
    """A node would not init, start or answer; the message carries its log tail."""


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port that binds now, never handed out twice in this run."""
    while (port := free_ports(1)[0]) in _handed_out:
        pass
    _handed_out.add(port)
    return port


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise NodeFailed(f"no VmRSS for pid {pid}")


def _child_env(*, federation_limits: bool = False) -> dict[str, str]:
    """`federation_limits`: keep the node's default per-peer limits (a bench that measures them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTNET_")}
    env.update({k: v for k, v in _NODE_ENV.items() if not (federation_limits and k.startswith("AGENTNET_FEDERATION_")
                                                           and k != "AGENTNET_FEDERATION_HOST")})
    return env


@dataclass(kw_only=True)
class BenchNode(NodeProcess):
    """A node process (`node.ops.launcher`, as the tests and the demo start them) with what the
    benches add: lifted limits, a py-spy profile, a stepped clock, CPU and memory readings."""

    http: aiohttp.ClientSession
    database_url: str | None = None
    federation_limits: bool = False  # run with the node's default per-peer limits
    profiler: subprocess.Popen | None = None
    # Set: the node runs under `bench.stepped_node`, its wall clock offset by what this file says.
    offset_file: Path | None = None

    @property
    def pid(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            raise NodeFailed(f"{self.server} is not running" + self.log_tail())
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return proc_rss_bytes(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        return f"\n--- {self.log_path} ---\n" + super().log_tail(lines)

    async def start(self, http: aiohttp.ClientSession | None = None, *,
                    timeout: float = START_TIMEOUT_S) -> float:
        """Spawn `agentnet run` (or the stepped node); returns the monotonic time of the spawn
        once the admin listener answers."""
        self.run_argv = None if self.offset_file is None else [
            sys.executable, "-m", "bench.stepped_node", "--data-dir", str(self.data_dir),
            "--offset-file", str(self.offset_file)]
        try:
            spawned = await super().start(http or self.http, timeout=timeout)
        except LaunchFailed as e:
            raise NodeFailed(str(e) + self.log_tail()) from None
        self._start_profiler()
        return spawned

    async def kill(self) -> int:
        """SIGKILL: a crash, nothing cleaned up in the node."""
        await asyncio.to_thread(self._stop_profiler)
        return await super().kill()

    def _start_profiler(self) -> None:
        if _profile_dir is None or self.proc is None:
            return
        out = _profile_dir / f"{self.data_dir.parent.name}-{self.server}-{self.proc.pid}.speedscope.json"
        # --nonblocking: sample without pausing the node, so the profile costs it little.
        self.profiler = subprocess.Popen(
            [py_spy() or "py-spy", "record", "--pid", str(self.proc.pid), "--rate", "200", "--nonblocking",
             "--format", "speedscope", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def _stop_profiler(self) -> None:
        """py-spy writes its file when interrupted."""
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.send_signal(signal.SIGINT)
            try:
                self.profiler.wait(30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
        self.profiler = None

    async def stop(self, *, timeout: float = STOP_TIMEOUT_S) -> int:
        await asyncio.to_thread(self._stop_profiler)
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else 0
        try:
            return await super().stop(timeout=timeout)
        except LaunchFailed:  # it was killed: the bench goes on
            return -9

    def terminate(self, timeout: float = 10.0) -> int | None:
        self._stop_profiler()
        return super().terminate(timeout)

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        api = NodeHttp(self.admin_url, self.admin_token, session=self.http, retry=NO_RETRIES)
        try:
            return await api.call(method, path, json_body=body)
        except AgentNetError as e:
            raise NodeFailed(f"{self.server}: {method} {path} -> {e}") from None

    async def create_agent(self, handle: str) -> str:
        made = await self.admin("POST", "/v1/agents", {"handle": handle, "display_name": f"Bench {handle}"})
        return made["token"]


class BenchCluster:
    """Nodes of one backend that trust each other's certificates; `close()` ends them all
    (and drops their PostgreSQL databases). `code_root` runs the nodes from another checkout
    (`python -m` imports from its working directory first), to compare versions."""

    def __init__(self, root: Path, backend: str, *, code_root: Path = REPO_ROOT, federation_limits: bool = False) -> None:
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unknown backend {backend!r}")
        self.root = root
        self.backend = backend
        self.code_root = code_root
        self.federation_limits = federation_limits
        self.bundle = root / "peers-ca.pem"
        self.nodes: dict[str, BenchNode] = {}
        self.http: aiohttp.ClientSession | None = None
        self._databases: list[str] = []

    async def __aenter__(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(n.terminate) for n in self.nodes.values()))
        if self.http is not None:
            await self.http.close()
            self.http = None
        for name in self._databases:
            await _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._databases.clear()

    async def init_nodes(self, *servers: str) -> list[BenchNode]:
        """`agentnet init` for each (concurrently), then the shared certificate bundle."""
        nodes = list(await asyncio.gather(*(self._init(s) for s in servers)))
        self.bundle.write_bytes(b"".join((n.data_dir / "tls.crt").read_bytes() for n in self.nodes.values()))
        return nodes

    async def start(self, *nodes: BenchNode) -> None:
        await asyncio.gather(*(n.start() for n in nodes))

    async def _init(self, server: str) -> BenchNode:
        data_dir = self.root / server
        database_url = None
        if self.backend == "postgresql":
            name = f"agentnet_bench_{uuid.uuid4().hex[:10]}"
            await _postgres(f'CREATE DATABASE "{name}"')
            self._databases.append(name)
            database_url = f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
        assert self.http is not None
        node = BenchNode(server=server, data_dir=data_dir, log_path=data_dir.parent / f"{data_dir.name}.log",
                         ports={name: free_port() for name in ("admin", "client", "federation")},
                         code_root=self.code_root, env=_child_env(federation_limits=self.federation_limits),
                         http=self.http, database_url=database_url, federation_limits=self.federation_limits)
        try:
            await node.init(tls_ca_file=self.bundle, database_url=database_url)
        except LaunchFailed as e:
            raise NodeFailed(str(e)) from None
        self.nodes[server] = node
        return node


async def _postgres(statement: str) -> None:
    import asyncpg  # only the PostgreSQL runs need it

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
