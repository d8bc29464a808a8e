"""LangChain's MCP adapter (`langchain-mcp-adapters`) against a real node at its defaults. It
needs the 1.x MCP SDK while the node runs on 2.x, so it lives in a virtualenv of its own,
installed from `langchain/requirements.txt` (pinned) once per checkout."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import eventually
from tests.node.mcp.test_mcp import TOOLS
from tests.node.networks.test_seed_scenario import ACME, NETWORK, THREAD, open_rollout
from tests.node_tools import exclusive

HERE = Path(__file__).resolve().parent / "langchain"
VENV = HERE / ".venv"
POSTED = "Posted through the MCP adapter of LangChain."


@pytest.fixture(scope="module")
def langchain_python() -> Path:
    requirements = (HERE / "requirements.txt").read_bytes()
    digest = hashlib.sha256(requirements).hexdigest()
    marker = VENV / ".installed"
    with exclusive(HERE):
        if not marker.is_file() or marker.read_text() != digest:
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
            done = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "-r", str(HERE / "requirements.txt")],
                                  capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, done.stderr[-3000:]
            marker.write_text(digest)
    return VENV / "bin" / "python"


async def test_langchain_s_adapter_loads_the_tools_posts_and_reads(pair, langchain_python, caplog):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "AGENTNET_MCP_URL": f"http://127.0.0.1:{acme.ports['client']}/mcp", "AGENTNET_TOKEN": tokens["ops"],
           "AGENTNET_NETWORK": NETWORK, "AGENTNET_THREAD": THREAD}
    process = await asyncio.create_subprocess_exec(str(langchain_python), str(HERE / "check.py"), env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-3000:]
    report = json.loads(out)
    assert TOOLS <= set(report["tools"])
    assert "next_cursor" in report["start"] and POSTED in report["read"]
    assert "not_found" in report["refused"]  # a tool error the model can read, not a crash

    async def reached_globex() -> list[dict]:
        page = await globex.client(tokens["delivery"], "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages")
        return [m for m in page["messages"] if m["body"] == POSTED and m["sender"] == f"agent:ops@{ACME}"]

    assert len(await eventually(reached_globex)) == 1
    # It closes each call's connection as soon as it has the answer: normal, so not an error.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
