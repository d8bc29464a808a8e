import pytest

from node.basics.config import CONFIG_FILE, load_settings, write_config
from node.basics.errors import ConfigError


def _node_dir(tmp_path, **values):
    write_config(tmp_path, {"server_name": "acme.example", "display_name": "Acme", **values})
    return tmp_path


def test_file_values_and_defaults(tmp_path):
    settings = load_settings(_node_dir(tmp_path, client_port=9000))
    assert (settings.server_name, settings.client_port, settings.admin_port) == ("acme.example", 9000, 8701)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'node.db'}"
    assert settings.signing_key_path == tmp_path / "signing.key"


def test_environment_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTNET_CLIENT_PORT", "9100")
    monkeypatch.setenv("AGENTNET_DATABASE_URL", "postgresql://db/acme")
    settings = load_settings(_node_dir(tmp_path, client_port=9000))
    assert settings.client_port == 9100
    assert settings.resolved_database_url == "postgresql://db/acme"


def test_connection_limits_come_from_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTNET_BODY_TIMEOUT_SECONDS", "12.5")
    settings = load_settings(_node_dir(tmp_path, federation_connections_per_address=16, client_max_connections=500))
    federation, client = settings.federation_connection_limits, settings.client_connection_limits
    assert (federation.per_address, federation.total, federation.body_timeout_s) == (16, 1024, 12.5)
    assert (federation.handshake_timeout_s, federation.header_timeout_s, federation.idle_timeout_s) == (10, 5, 20)
    # Agents of one host share its address, a stream each: no per-address limit on the client side.
    assert (client.per_address, client.total, client.body_timeout_s) == (None, 500, 12.5)


@pytest.mark.parametrize(
    ("values", "env", "needle"),
    [
        ({"admin_host": "0.0.0.0"}, {}, "admin_host"),
        ({}, {"AGENTNET_ADMIN_HOST": "10.1.2.3"}, "admin_host"),
        ({"client_port": 70000}, {}, "client_port"),
        ({}, {"AGENTNET_CLIENT_PORT": "eighty"}, "client_port"),
        ({"admin_port": 9000, "client_port": 9000}, {}, "must all differ"),
        ({"federation_port": 8701}, {}, "must all differ"),
        ({"public_endpoint": "http://acme.example"}, {}, "public_endpoint"),
        ({"colour": "blue"}, {}, "colour"),
        ({"log_level": "LOUD"}, {}, "log_level"),
        ({"max_body_bytes": 10}, {}, "max_body_bytes"),
        ({"webhook_allowed_hosts": ["10.0.0.1/8"]}, {}, "webhook_allowed_hosts.*host bits set"),
        ({"webhook_allowed_hosts": ["hooks corp"]}, {}, "webhook_allowed_hosts.*'hooks corp'"),
        ({}, {"AGENTNET_WEBHOOK_ALLOWED_HOSTS": "10.0.0.5"}, "webhook_allowed_hosts.*a list is JSON"),
        ({"header_timeout_seconds": 0}, {}, "header_timeout_seconds"),
        ({}, {"AGENTNET_FEDERATION_CONNECTIONS_PER_ADDRESS": "0"}, "federation_connections_per_address"),
        ({"federation_max_connections": 2}, {}, "federation_max_connections"),
    ],
)
def test_bad_values_name_the_setting(tmp_path, monkeypatch, values, env, needle):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=needle):
        load_settings(_node_dir(tmp_path, **values))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="agentnet init"):
        load_settings(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("server_name = [unterminated")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("server", "values", "endpoint"),
    [
        ("acme.example", {}, "https://acme.example:8443"),
        ("acme.example", {"federation_port": 443}, "https://acme.example"),
        ("127.0.0.1:8801", {}, "https://127.0.0.1:8801"),
        ("acme.example", {"public_endpoint": "https://gw.acme.example/"}, "https://gw.acme.example"),
    ],
)
def test_default_public_endpoint(tmp_path, server, values, endpoint):
    write_config(tmp_path, {"server_name": server, "display_name": "Acme", **values})
    assert load_settings(tmp_path).resolved_public_endpoint == endpoint


def test_the_webhook_allow_list_comes_from_the_file_or_the_environment_and_own_ports_from_the_listeners(
        tmp_path, monkeypatch):
    node_dir = _node_dir(tmp_path, webhook_allowed_hosts=["hooks.corp.example", "10.20.0.0/16"], client_port=9000)
    limits = load_settings(node_dir).webhook_limits
    assert limits.allowed_hosts == ("hooks.corp.example", "10.20.0.0/16")
    assert limits.own_listeners == (("admin", 8701), ("client", 9000), ("federation", 8443))
    monkeypatch.setenv("AGENTNET_WEBHOOK_ALLOWED_HOSTS", '["127.0.0.1"]')
    assert load_settings(node_dir).webhook_limits.allowed_hosts == ("127.0.0.1",)
    monkeypatch.delenv("AGENTNET_WEBHOOK_ALLOWED_HOSTS")
    assert load_settings(_node_dir(tmp_path)).webhook_limits.allowed_hosts == ()  # the default: public only
