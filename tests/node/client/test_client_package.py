"""The client is a package of its own: `pip install ./node/client` into a fresh virtual
environment (no system site packages, nothing of the server) gives `agentnet_client` with its
five modules and nothing else (not the TypeScript client beside them), and a program there,
which cannot import the server, talks to a real node with the blocking and the async client.

The install needs a package index (for the build backend, aiohttp and pydantic). When the
install fails and pip cannot reach any index either, the test is skipped, saying so; when an
index answers, a failed install fails the test."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.cluster import start_node
from tests.tls_fixtures import TestCertificateAuthority

CLIENT = Path(__file__).resolve().parents[3] / "node" / "client"
ACME = "acme.example"
MODULES = {"__init__.py", "agent_client.py", "http.py", "models.py", "sync_client.py"}

PROGRAM = """
import asyncio, json, os, sys

import agentnet_client
from agentnet_client import AgentClient, AgentNetError, SyncAgentClient

try:
    import node
    server = node.__file__
except ModuleNotFoundError:
    server = None
url, token = os.environ["AGENTNET_URL"], os.environ["AGENTNET_TOKEN"]

with SyncAgentClient(url, token) as client:
    me = client.whoami()
    start = client.events().next_cursor
    posted = client.post("billing", "from the installed client")
    with client.stream(start) as events:
        event = next(events)
    bodies = [m.body for m in client.read("billing").items]
    try:
        client.read("no-such-thread")
        missing = None
    except AgentNetError as e:
        missing = e.code


async def main():
    async with AgentClient(url, token) as client:
        return (await client.whoami()).id, [m.body for m in (await client.read("billing")).items]

async_me, async_bodies = asyncio.run(main())
print(json.dumps({
    "package": agentnet_client.__file__, "server": server, "model": type(me).__module__,
    "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("node", "storage", "federation")),
    "me": me.id, "event": [event.type, event.id, event.body], "posted": posted.id, "bodies": bodies,
    "missing": missing, "async": [async_me, async_bodies],
}))
"""


async def _run(*argv: str | Path, timeout: float, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(*map(str, argv), cwd=cwd, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(timeout):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode("utf-8", "replace")


def _clean_env() -> dict[str, str]:
    """This process's environment (pip's settings included) without what would let the new
    environment see this one's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


async def _install(tmp_path: Path) -> Path:
    """A fresh environment with the client installed from a copy of `node/client` (a build
    writes `build/` and `*.egg-info` beside the sources: not in the repository's)."""
    source = tmp_path / "client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns(
        "node_modules", "dist", "build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    code, out = await _run(sys.executable, "-m", "venv", venv, timeout=60, cwd=tmp_path, env=_clean_env())
    assert code == 0, out
    python = venv / "bin" / "python"
    pip = (python, "-m", "pip", "--disable-pip-version-check", "--no-input")
    code, out = await _run(*pip, "install", source, timeout=150, cwd=tmp_path, env=_clean_env())
    if code != 0:
        reached, said = await _run(*pip, "download", "--no-deps", "--retries", "0", "--timeout", "10",
                                   "--dest", tmp_path / "probe", "setuptools>=77", timeout=60, cwd=tmp_path,
                                   env=_clean_env())
        if reached != 0:
            pytest.skip(f"pip cannot reach a package index here: {said.strip().splitlines()[-1:]}")
        raise AssertionError(f"pip install ./node/client failed while an index answers:\n{out}")
    return python


async def test_the_installed_package_talks_to_a_node_without_the_server(tmp_path):
    python = await _install(tmp_path)
    installed = next((tmp_path / "venv" / "lib").glob("python3*/site-packages/agentnet_client"))
    assert {p.name for p in installed.iterdir() if p.name != "__pycache__"} == MODULES

    node = await start_node(tmp_path / "nodes", ACME, TestCertificateAuthority())
    try:
        token = await node.create("agent", "ops", "Ops")
        await node.admin("POST", "/v1/threads", {"name": "billing", "title": "Billing", "members": ["agent:ops"]})
        (tmp_path / "program.py").write_text(PROGRAM)
        env = {**_clean_env(), "AGENTNET_URL": f"http://127.0.0.1:{node.ports['client']}", "AGENTNET_TOKEN": token}
        code, out = await _run(python, "-I", tmp_path / "program.py", timeout=60, cwd=tmp_path, env=env)
    finally:
        await node.stop()
    assert code == 0, out
    said = json.loads(out.strip().splitlines()[-1])
    assert Path(said["package"]).parent == installed
    assert (said["server"], said["project_modules"], said["model"]) == (None, [], "agentnet_client.models")
    assert said["me"] == f"agent:ops@{ACME}"
    assert said["event"] == ["message.posted", said["posted"], "from the installed client"]
    assert said["bodies"] == ["from the installed client"] and said["missing"] == "not_found"
    assert said["async"] == [f"agent:ops@{ACME}", ["from the installed client"]]
