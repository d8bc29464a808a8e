"""Node settings: `DATA_DIR/agentnet.toml`, overridden by `AGENTNET_*` environment variables.

Settings are read in `main()`, never at import. Bad values fail with one readable line per
problem that names the setting and where it came from.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError, TomlConfigSettingsSource

from node.basics.errors import ConfigError
from node.basics.limits import ClientLimits, FederationLimits, WebhookLimits
from node.http.connection_guard import (
    BODY_TIMEOUT_S,
    HANDSHAKE_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    MAX_CONNECTIONS,
    PER_ADDRESS_CONNECTIONS,
    ConnectionLimits,
)
from node.webhooks.destinations import parse_allowed_host

__all__ = ["CONFIG_FILE", "NodeSettings", "load_settings", "write_config"]

CONFIG_FILE = "agentnet.toml"


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTNET_", extra="forbid")

    server_name: str = Field(min_length=1, max_length=255)
    display_name: str = Field(min_length=1, max_length=200)
    data_dir: Path
    database_url: str | None = Field(None, description="default: SQLite file node.db in the data dir")
    signing_key_file: str = "signing.key"
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(8701, ge=1, le=65535)
    client_host: str = "127.0.0.1"
    client_port: int = Field(8702, ge=1, le=65535)
    federation_host: str = "0.0.0.0"
    federation_port: int = Field(8443, ge=1, le=65535)
    public_endpoint: str | None = Field(
        None, description="https URL peers use to reach this node; default https://SERVER_NAME:FEDERATION_PORT"
    )
    web_url: str | None = Field(
        None, description="where people open the web app (sign-in links point there), e.g. https://chat.acme.example; "
                          "default http://CLIENT_HOST:CLIENT_PORT")
    tls_cert_file: str = "tls.crt"
    tls_key_file: str = "tls.key"
    tls_ca_file: str | None = Field(
        None, description="PEM file of the partners' certificates or CAs to trust (a relative path is from the data "
                          "dir); read again when it changes; default: the system's public CAs"
    )
    auto_migrate: bool = True
    max_body_bytes: int = Field(256 * 1024, ge=4 * 1024, le=16 * 1024 * 1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    # Client side (node.basics.limits.ClientLimits has the reasons for each default).
    post_rate_per_second: float = Field(10.0, gt=0, le=100_000)
    post_burst: int = Field(30, ge=1, le=100_000)
    stream_heartbeat_seconds: float = Field(15.0, ge=1, le=300)
    stream_write_timeout_seconds: float = Field(10.0, ge=1, le=300)
    feed_retention_hours: int = Field(7 * 24, ge=1, le=24 * 3650)
    # What one peer node may make this node do (node.basics.limits.FederationLimits has the reasons).
    federation_requests_per_second: float = Field(100.0, gt=0, le=1_000_000)
    federation_requests_burst: int = Field(300, ge=1, le=1_000_000)
    federation_submissions_per_second: float = Field(50.0, gt=0, le=1_000_000)
    federation_submissions_burst: int = Field(200, ge=100, le=10_000_000)
    federation_host_events_per_second: float = Field(1000.0, gt=0, le=1_000_000)
    federation_host_events_burst: int = Field(5000, ge=100, le=10_000_000)
    federation_bytes_per_second: int = Field(2 * 1024 * 1024, ge=64 * 1024, le=10 * 1024**3)
    federation_bytes_burst: int = Field(8 * 1024 * 1024, ge=2 * 1024 * 1024, le=10 * 1024**3)
    # Webhooks (node.basics.limits.WebhookLimits has the reasons for each default).
    webhook_allow_http: bool = False
    webhook_timeout_seconds: float = Field(10.0, ge=1, le=60)
    webhook_disable_after_failures: int = Field(10, ge=1, le=10_000)
    webhook_disable_after_seconds: int = Field(24 * 3600, ge=0, le=30 * 24 * 3600)
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list, max_length=1000,
        description="internal receivers webhooks may reach: host names, addresses, CIDR blocks",
    )
    # Connections (node.http.connection_guard has the reasons for each default).
    federation_connections_per_address: int = Field(PER_ADDRESS_CONNECTIONS, ge=1, le=100_000)
    federation_max_connections: int = Field(MAX_CONNECTIONS, ge=16, le=1_000_000)
    client_max_connections: int = Field(MAX_CONNECTIONS, ge=16, le=1_000_000)
    tls_handshake_timeout_seconds: float = Field(HANDSHAKE_TIMEOUT_S, gt=0, le=300)
    header_timeout_seconds: float = Field(HEADER_TIMEOUT_S, gt=0, le=300)
    body_timeout_seconds: float = Field(BODY_TIMEOUT_S, gt=0, le=3600)
    idle_timeout_seconds: float = Field(IDLE_TIMEOUT_S, gt=0, le=3600)

    @field_validator("admin_host")
    @classmethod
    def _admin_is_loopback(cls, value: str) -> str:
        # The admin listener holds the keys to the company; it never listens beyond loopback.
        if value != "localhost":
            try:
                loopback = ipaddress.ip_address(value).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError("the admin listener binds to loopback only (127.0.0.1, ::1, localhost)")
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _allowed_hosts_parse(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_allowed_host(entry)  # its ValueError names the entry
        return value

    @field_validator("public_endpoint")
    @classmethod
    def _endpoint_is_https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("public_endpoint must be an https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _distinct_ports(self) -> NodeSettings:
        if len({self.admin_port, self.client_port, self.federation_port}) != 3:
            raise ValueError("admin_port, client_port and federation_port must all differ")
        return self

    @property
    def client_limits(self) -> ClientLimits:
        return ClientLimits(
            post_rate_per_s=self.post_rate_per_second, post_burst=self.post_burst,
            stream_heartbeat_s=self.stream_heartbeat_seconds, stream_write_timeout_s=self.stream_write_timeout_seconds,
            feed_retention_ms=self.feed_retention_hours * 3600 * 1000,
        )

    @property
    def federation_limits(self) -> FederationLimits:
        return FederationLimits(
            requests_per_s=self.federation_requests_per_second, requests_burst=self.federation_requests_burst,
            submissions_per_s=self.federation_submissions_per_second,
            submissions_burst=self.federation_submissions_burst,
            host_events_per_s=self.federation_host_events_per_second,
            host_events_burst=self.federation_host_events_burst,
            bytes_per_s=self.federation_bytes_per_second, bytes_burst=self.federation_bytes_burst,
        )

    @property
    def webhook_limits(self) -> WebhookLimits:
        return WebhookLimits(
            allow_http=self.webhook_allow_http, timeout_s=self.webhook_timeout_seconds,
            disable_after_failures=self.webhook_disable_after_failures,
            disable_after_ms=self.webhook_disable_after_seconds * 1000,
            allowed_hosts=tuple(self.webhook_allowed_hosts),
            own_listeners=(("admin", self.admin_port), ("client", self.client_port),
                           ("federation", self.federation_port)),
        )

    @property
    def federation_connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(
            per_address=self.federation_connections_per_address, total=self.federation_max_connections,
            handshake_timeout_s=self.tls_handshake_timeout_seconds, header_timeout_s=self.header_timeout_seconds,
            body_timeout_s=self.body_timeout_seconds, idle_timeout_s=self.idle_timeout_seconds,
        )

    @property
    def client_connection_limits(self) -> ConnectionLimits:
        """No per-address limit: the agents of one host share its address, a stream each."""
        return ConnectionLimits(
            per_address=None, total=self.client_max_connections, header_timeout_s=self.header_timeout_seconds,
            body_timeout_s=self.body_timeout_seconds, idle_timeout_s=self.idle_timeout_seconds,
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'node.db'}"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / self.signing_key_file

    @property
    def resolved_public_endpoint(self) -> str:
        """Default: the server name, with the federation port unless the name carries one."""
        if self.public_endpoint:
            return self.public_endpoint
        if ":" in self.server_name or self.federation_port == 443:
            return f"https://{self.server_name}"
        return f"https://{self.server_name}:{self.federation_port}"

    @property
    def resolved_web_url(self) -> str:
        return self.web_url or f"http://{self.client_host}:{self.client_port}"

    @property
    def tls_cert_path(self) -> Path:
        return self.data_dir / self.tls_cert_file

    @property
    def tls_key_path(self) -> Path:
        return self.data_dir / self.tls_key_file

    @property
    def tls_ca_path(self) -> Path | None:
        return self.data_dir / self.tls_ca_file if self.tls_ca_file else None


def load_settings(data_dir: Path) -> NodeSettings:
    path = data_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `agentnet init` first or pass the right --data-dir")
    try:
        tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None

    class FromFile(NodeSettings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        ):
            return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path))

    try:
        return FromFile(data_dir=data_dir)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid settings (from {path} and AGENTNET_* variables): {problems}") from None
    except SettingsError as e:  # an AGENTNET_* list that is not JSON
        raise ConfigError(f'invalid settings (from AGENTNET_* variables): {e} (a list is JSON: ["a", "b"])') from None


def write_config(data_dir: Path, values: dict[str, str | int | bool]) -> Path:
    """Write a flat TOML file, 0600 (it may hold a database password); JSON string escapes are
    valid TOML basic strings."""
    lines = ["# Agent Network node settings. AGENTNET_<NAME> environment variables override these.\n"]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}\n")
    path = data_dir / CONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # a file that was there keeps its mode through O_CREAT
        f.write("".join(lines))
    return path
