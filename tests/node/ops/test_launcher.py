"""The one launcher (`node.ops.launcher`) beyond what the process, demo and bench tests use of
it: where the admin token comes from, which entry module a checkout has, and the refusals."""

from __future__ import annotations

import aiohttp
import pytest

from node.ops.launcher import LaunchFailed, NodeProcess, child_env, entry_module, free_ports


def test_entry_module_follows_the_checkout(tmp_path):
    assert entry_module(tmp_path) == "node.cli"  # a checkout from before the rooms
    (tmp_path / "node" / "main").mkdir(parents=True)
    (tmp_path / "node" / "main" / "cli.py").write_text("")
    assert entry_module(tmp_path) == "node.main.cli"


def test_ports_are_distinct_and_below_the_ephemeral_range():
    ports = free_ports(30)
    assert len(set(ports)) == 30 and all(20000 <= p < 32000 for p in ports)


def test_child_env_drops_the_callers_settings(monkeypatch):
    monkeypatch.setenv("AGENTNET_ADMIN_PORT", "1")
    env = child_env(log_level="WARNING")
    assert "AGENTNET_ADMIN_PORT" not in env
    assert env["AGENTNET_LOG_LEVEL"] == "WARNING" and env["AGENTNET_FEDERATION_HOST"] == "127.0.0.1"


def _node(tmp_path) -> NodeProcess:
    admin, client, federation = free_ports(3)
    return NodeProcess(server="acme.example", data_dir=tmp_path / "acme", log_path=tmp_path / "acme.log",
                       ports={"admin": admin, "client": client, "federation": federation})


async def test_the_admin_token_is_read_from_the_file_init_saved(tmp_path):
    node = _node(tmp_path)
    output = await node.init(tls_ca_file=tmp_path / "peers.pem")
    saved = (tmp_path / "acme" / "admin.token").read_text().strip()
    assert node.admin_token == saved and saved in output
    (tmp_path / "acme" / "admin.token").unlink()
    assert node.admin_token == output.strip().splitlines()[-1]  # an older checkout only printed it


async def test_refusals_name_the_node(tmp_path):
    node = _node(tmp_path)
    with pytest.raises(LaunchFailed, match=r"acme\.example was never started"):
        await node.stop()
    with pytest.raises(LaunchFailed, match=r"agentnet init Not A Name exited 2"):
        await NodeProcess(server="Not A Name", data_dir=tmp_path / "bad", log_path=tmp_path / "bad.log",
                          ports=node.ports).init(tls_ca_file=tmp_path / "peers.pem")
    await node.init(tls_ca_file=tmp_path / "peers.pem")
    (tmp_path / "peers.pem").write_bytes((tmp_path / "acme" / "tls.crt").read_bytes())
    async with aiohttp.ClientSession() as http:
        await node.start(http)
        try:
            with pytest.raises(LaunchFailed, match="already running"):
                node.spawn()
        finally:
            assert await node.stop() == 0
        assert node.runs == 1 and "=== run 1 of acme.example ===" in node.log_tail()
