"""The operator commands read a listener's address without the full settings model; it must
give the same answer as the model the node itself runs with."""

from __future__ import annotations

import os

import pytest

from node.basics.config import load_settings, write_config
from node.basics.errors import ConfigError
from node.ops.arguments import listener_url

BASE = {"server_name": "acme.example", "display_name": "Acme"}


def _from_settings(data_dir, listener: str) -> str:
    settings = load_settings(data_dir)
    host, port = (settings.admin_host, settings.admin_port) if listener == "admin" else (
        settings.client_host, settings.client_port)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@pytest.mark.parametrize("listener", ["admin", "client"])
@pytest.mark.parametrize(("file", "env"), [
    ({}, {}),
    ({"admin_port": 9701, "client_port": 9702}, {}),
    ({"client_host": "0.0.0.0", "admin_port": 9701}, {"AGENTNET_ADMIN_PORT": "9801"}),
    ({}, {"AGENTNET_CLIENT_HOST": "::1", "AGENTNET_CLIENT_PORT": "9902"}),
    ({"client_host": "127.0.0.2"}, {"agentnet_client_port": "9903"}),
])
def test_the_light_reader_agrees_with_the_settings_model(tmp_path, monkeypatch, listener, file, env):
    for name in [k for k in os.environ if k.upper().startswith("AGENTNET_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    write_config(tmp_path, {**BASE, **file})
    assert listener_url(tmp_path, listener) == _from_settings(tmp_path, listener)


def test_a_missing_or_broken_settings_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"agentnet\.toml not found: run `agentnet init` first"):
        listener_url(tmp_path, "admin")
    (tmp_path / "agentnet.toml").write_text("admin_port = [")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        listener_url(tmp_path, "admin")
    (tmp_path / "agentnet.toml").write_text('admin_port = "x"')
    with pytest.raises(ConfigError, match="admin_port: 'x' is not a port number"):
        listener_url(tmp_path, "admin")
