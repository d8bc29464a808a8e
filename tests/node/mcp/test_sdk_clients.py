"""The MCP endpoint with the clients agent developers use, each at its own default timeouts:
the official Python SDK, the OpenAI Agents SDK's MCP adapter (a 5 s session timeout), and the
official TypeScript SDK through Node (a 60 s request timeout; installed by this test from the
committed package-lock.json). A default wait must end inside each client's timeout, every tool
declares its output schema, and a message posted by one company reaches the other's waiting
agent."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from agents.mcp import MCPServerStreamableHttp
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from node.mcp.endpoint import MCP_DEFAULT_WAIT_S, MCP_MAX_WAIT_S
from tests.cluster import ClusterNode
from tests.node.networks.test_seed_scenario import NETWORK, THREAD, open_rollout
from tests.node_tools import exclusive, require_node

TS_DIR = Path(__file__).parent / "ts"


def _url(node: ClusterNode) -> str:
    return f"http://127.0.0.1:{node.ports['client']}/mcp"


async def test_the_python_sdk_at_its_defaults_waits_and_hears_progress(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {tokens['delivery']}"})  # the SDK's timeouts
    async with http, Client(streamable_http_client(_url(globex), http_client=http)) as client:
        assert client.server_info is not None and client.server_info.version  # not empty
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools if t.output_schema is None] == []
        started = time.monotonic()
        first = await client.call_tool("wait_for_messages", {})
        assert not first.is_error and MCP_DEFAULT_WAIT_S - 0.5 < time.monotonic() - started < 5  # inside 5 s
        progress: list[float] = []

        async def heard(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        waiting = asyncio.create_task(client.call_tool(
            "wait_for_messages", {"after": first.structured_content["next_cursor"], "timeout_seconds": 10},
            progress_callback=heard))
        await asyncio.sleep(5)
        posted = await acme.client(tokens["ops"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                                   {"body": "Ready for Thursday."}, expect=201)
        result = await asyncio.wait_for(waiting, 15)
        assert [e["id"] for e in result.structured_content["events"] if e["type"] == "message.posted"] == [posted["id"]]
        assert len(progress) >= 2 and progress == sorted(progress)  # while it waited


async def test_the_openai_agents_sdk_adapter_at_its_defaults(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    server = MCPServerStreamableHttp(params={"url": _url(globex),
                                             "headers": {"Authorization": f"Bearer {tokens['delivery']}"}},
                                     name="agent-network")
    async with server:
        names = {t.name for t in await server.list_tools()}
        assert {"wait_for_messages", "post_message", "read_thread", "react"} <= names
        first = await server.call_tool("wait_for_messages", {})  # a default wait ends inside the 5 s timeout
        cursor = first.structured_content["next_cursor"]
        posted = await acme.client(tokens["ops"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                                   {"body": "Can you confirm?", "mentions": ["agent:delivery@globex.example"]},
                                   expect=201)
        seen: list[str] = []
        for _ in range(5):  # an agent's loop: wait, and wait again with the cursor it was given
            page = await server.call_tool("wait_for_messages", {"after": cursor, "mentions_only": True})
            cursor = page.structured_content["next_cursor"]
            seen += [e["id"] for e in page.structured_content["events"]]
            if seen:
                break
        assert seen == [posted["id"]]
        answer = await server.call_tool("post_message", {"network": NETWORK, "thread": THREAD, "body": "Confirmed.",
                                                         "reply_to": posted["id"]})
        assert answer.structured_content["reply_to"] == posted["id"]


@pytest.fixture(scope="module")
def typescript_sdk() -> Path:
    """`npm ci` of the committed lock file, once; a machine without Node skips, unless CI says it must not."""
    require_node()
    with exclusive(TS_DIR):
        if not (TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-2000:]
    return TS_DIR


async def test_the_typescript_sdk_at_its_defaults(pair, typescript_sdk):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    env = {**os.environ, "AGENTNET_MCP_URL": _url(acme), "AGENTNET_TOKEN": tokens["ops"], "AGENTNET_NETWORK": NETWORK,
           "AGENTNET_THREAD": THREAD}
    process = await asyncio.create_subprocess_exec("node", str(typescript_sdk / "check.mjs"), env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["server"]["name"] == "agent-network" and report["server"]["version"]
    assert report["withoutOutputSchema"] == []
    assert report["waitMaximum"] == MCP_MAX_WAIT_S < 60  # the SDK's request timeout
    assert MCP_DEFAULT_WAIT_S * 1000 - 500 < report["defaultWaitMs"] < 60_000
    assert report["seen"] == ["Posted from the TypeScript SDK."] and report["waitWithEventMs"] < 5000
