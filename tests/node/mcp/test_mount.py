"""A running node carries only what serving needs: the MCP SDK is loaded by the first MCP
request (`node.mcp.mount`), Alembic only when the schema is behind (`storage.migrations_runner`),
and `cryptography` only by the commands that make certificates (`node.ops.tls_ca`). Each is
megabytes of a node's resident memory; bench/ measures the total."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.process_nodes import REPO_ROOT, free_port

LAZY = ("mcp", "alembic", "cryptography")

_SERVE_AND_REPORT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    import aiohttp
    from node.basics.config import load_settings
    from node.main.runner import serve

    async def main(data_dir, admin_token, lazy):
        settings = load_settings(Path(data_dir))
        stop = asyncio.Event()
        node = asyncio.create_task(serve(settings, stop=stop))
        url = f"http://127.0.0.1:{settings.client_port}/healthz"
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise SystemExit("the node did not come up")
            print("loaded:", ",".join(m for m in lazy if m in sys.modules))
            mcp = f"http://127.0.0.1:{settings.client_port}/mcp"
            async with http.post(mcp, json={}) as resp:
                print("unauthenticated mcp:", resp.status)
            print("loaded after a refused mcp request:", ",".join(m for m in lazy if m in sys.modules))
            admin = {"Authorization": f"Bearer {admin_token}"}
            async with http.post(f"http://127.0.0.1:{settings.admin_port}/v1/agents", headers=admin,
                                 json={"handle": "ops", "display_name": "Ops"}) as resp:
                token = (await resp.json())["token"]
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
            request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            async with http.post(mcp, json=request, headers=headers) as resp:
                body = await resp.text()
                print("tools/list:", resp.status, "post_message" in body)
            print("loaded after mcp:", ",".join(m for m in lazy if m in sys.modules))
        stop.set()
        await node

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3].split(",")))
""")


def test_a_serving_node_loads_mcp_at_its_first_mcp_request_and_never_alembic(tmp_path: Path):
    data_dir = tmp_path / "node"
    init = subprocess.run(
        [sys.executable, "-m", "node.main.cli", "init", "--server-name", "acme.example", "--data-dir", str(data_dir),
         "--admin-port", str(free_port()), "--client-port", str(free_port()), "--federation-port", str(free_port())],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert init.returncode == 0, init.stderr
    admin_token = (data_dir / "admin.token").read_text().strip()
    served = subprocess.run([sys.executable, "-c", _SERVE_AND_REPORT, str(data_dir), admin_token, ",".join(LAZY)],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert served.returncode == 0, served.stderr
    lines = dict(line.split(": ", 1) for line in served.stdout.strip().splitlines())
    assert lines["loaded"] == ""
    assert lines["unauthenticated mcp"] == "401"  # the auth middleware answers before the SDK is needed
    assert lines["loaded after a refused mcp request"] == ""
    assert lines["tools/list"] == "200 True"
    loaded = lines["loaded after mcp"].split(",")
    assert "mcp" in loaded and "alembic" not in loaded  # (the SDK brings cryptography along)
