"""`docker-compose.federation.yml` and the `Dockerfile`, checked without Docker.

Docker does not run here, so the file's structure is checked against what it refers to:
every `agentnet ...` command parses with the real CLI parser, every `AGENTNET_*` variable is a
setting and its value validates, every volume and network is declared, dependencies wait for
the right conditions, health checks are there. Then the same topology runs as processes: the
`ca-init` script's commands make the CA and certificates, each node is set up by its init
command with its service's environment (paths mapped into a temporary directory, its own
PostgreSQL database), and a message crosses from one company to the other over TLS.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from node.basics.config import CONFIG_FILE, NodeSettings, write_config
from node.main import cli
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.node.federation.test_processes import MESSAGES, open_rollout
from tests.process_nodes import REPO_ROOT, ProcessCluster, ProcessNode

COMPOSE = REPO_ROOT / "docker-compose.federation.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
NODES = {"acme": "acme.example", "globex": "globex.example"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# pg_dump/pg_restore from the image's Debian release must match the server's major version.
DEBIAN_POSTGRES_CLIENT = {"bookworm": "15", "trixie": "17"}
SHELL_OPERATORS = {"||", "&&", ";", "|", "&"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def _interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with NAME unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _dockerfile_json(instruction: str) -> list[str]:
    (line,) = [line for line in DOCKERFILE.read_text("utf-8").splitlines() if line.startswith(instruction + " ")]
    return json.loads(line[len(instruction) + 1:])


def _simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script made of plain lines joined by || && ; |."""
    commands: list[list[str]] = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in SHELL_OPERATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [c[1:] if c[:1] == ["exec"] else c for c in commands if c]


def _argvs(service: dict) -> list[list[str]]:
    """What the service's container runs, as argv lists (the image's ENTRYPOINT applies when
    the service does not set its own)."""
    entrypoint = service.get("entrypoint", _dockerfile_json("ENTRYPOINT"))
    command = service.get("command", _dockerfile_json("CMD"))
    if entrypoint[:1] == ["/bin/sh"]:
        assert entrypoint[1:] in (["-c"], ["-ec"]), entrypoint
        (script,) = command
        return _simple_commands(script)
    return [entrypoint + command]


def _agentnet_commands(compose: dict) -> dict[str, list[list[str]]]:
    found = {}
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("agentnet-node"):
            found[name] = [argv for argv in _argvs(service) if argv[0] == "agentnet"]
    return found


def _parse(argv: list[str]):
    assert argv[0] == "agentnet", argv
    try:
        return cli._parser().parse_args(argv[1:])
    except SystemExit:
        raise AssertionError(f"the CLI refuses {shlex.join(argv)}") from None


def _environment(service: dict) -> dict[str, str]:
    return {k: _interpolate(str(v)) for k, v in (service.get("environment") or {}).items()}


def _named_mounts(service: dict) -> dict[str, str]:
    """target path -> named volume."""
    mounts = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        if not source.startswith(("/", ".", "~")):
            mounts[target] = source
    return mounts


# --- the file's structure ---------------------------------------------------------------------


def test_services_and_their_order(compose):
    services = compose["services"]
    assert set(services) >= {"ca-init", "acme-db", "globex-db", "acme-init", "globex-init", "acme", "globex"}
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, (name, target)
            assert spec["condition"] in CONDITIONS, (name, target, spec)
            if spec["condition"] == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), (name, target)
    for company in NODES:
        assert services[f"{company}-init"]["depends_on"] == {
            "ca-init": {"condition": "service_completed_successfully"},
            f"{company}-db": {"condition": "service_healthy"}}
        assert services[company]["depends_on"] == {
            f"{company}-init": {"condition": "service_completed_successfully"},
            f"{company}-db": {"condition": "service_healthy"}}
        assert services[company].get("restart") == "unless-stopped"


def test_every_agentnet_command_parses_with_the_cli(compose):
    commands = _agentnet_commands(compose)
    parsed = {name: [_parse(argv) for argv in argvs] for name, argvs in commands.items()}
    assert [(a.command, a.tls_command) for a in parsed["ca-init"]] == [("tls", "make-ca"), ("tls", "issue"),
                                                                       ("tls", "issue")]
    assert {a.server_name for a in parsed["ca-init"][1:]} == set(NODES.values())
    for company, server in NODES.items():
        (init,) = parsed[f"{company}-init"]
        assert (init.command, init.server_name, str(init.data_dir)) == ("init", server, "/data")
        (run,) = parsed[company]
        assert (run.command, str(run.data_dir)) == ("run", "/data")
        # init runs only on an empty volume, so a second `up` does not fail on an existing node.
        (script,) = compose["services"][f"{company}-init"]["command"]
        assert script.strip().startswith("test -f /data/agentnet.toml ||"), script
    for argv in commands["ca-init"]:
        assert "--exist-ok" in argv, argv  # idempotent too


def test_environment_names_real_settings_with_valid_values(compose):
    for company, server in NODES.items():
        for name in (company, f"{company}-init"):
            env = _environment(compose["services"][name])
            assert env, name
            fields = {}
            for key, value in env.items():
                assert key.startswith("AGENTNET_"), key
                field = key.removeprefix("AGENTNET_").lower()
                assert field in NodeSettings.model_fields, f"{name}: {key} is not a setting"
                fields[field] = value
            # The values validate as settings (types, ranges, https endpoint, ports).
            settings = NodeSettings(server_name=server, display_name=company, data_dir=Path("/data"), **fields)
            assert settings.resolved_public_endpoint == f"https://{server}:8443"
            assert settings.database_url.startswith("postgresql://agentnet:") and f"@{company}-db:5432/" \
                in settings.database_url
            assert settings.client_host == "0.0.0.0"  # published; the admin listener stays on loopback
            for path in (settings.tls_cert_path, settings.tls_key_path, settings.tls_ca_path):
                assert path.is_relative_to(f"/tls/{server}"), path
        assert _environment(compose["services"][company]) == _environment(compose["services"][f"{company}-init"])


def test_volumes_and_networks_are_declared_and_wired(compose):
    services, volumes, networks = compose["services"], compose["volumes"], compose["networks"]
    for name, service in services.items():
        for _target, volume in _named_mounts(service).items():
            assert volume in volumes, (name, volume)
        service_networks = service.get("networks") or {}
        for network in service_networks:
            assert network in networks, (name, network)
    mounts = {name: _named_mounts(s) for name, s in services.items()}
    assert mounts["ca-init"] == {"/ca": "ca", "/tls": "tls"}
    for company, server in NODES.items():
        assert mounts[company]["/data"] == mounts[f"{company}-init"]["/data"] == f"{company}-data"
        assert mounts[company]["/tls"] == "tls" and mounts[f"{company}-db"] == {"/var/lib/postgresql/data":
                                                                                 f"{company}-db"}
        assert "ca" not in mounts[company].values()  # the CA key stays with ca-init
        aliases = services[company]["networks"]["federation"]["aliases"]
        assert aliases == [server]
        # The database is on the company's own network only, which its node shares.
        assert services[f"{company}-db"]["networks"] == [f"{company}-internal"]
        assert f"{company}-internal" in services[company]["networks"]
        assert networks[f"{company}-internal"].get("internal") is True


def test_health_checks_and_two_postgresqls(compose):
    services = compose["services"]
    databases = {name: s for name, s in services.items() if s.get("image", "").startswith("postgres:")}
    assert set(databases) == {"acme-db", "globex-db"}
    (base,) = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text("utf-8"), re.M)
    release = base.rsplit("-", 1)[1]
    for name, db in databases.items():
        assert db["image"].split(":")[1].split(".")[0] == DEBIAN_POSTGRES_CLIENT[release], (db["image"], base)
        assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
        env = _environment(db)
        company = name.removesuffix("-db")
        url = _environment(services[company])["AGENTNET_DATABASE_URL"]
        assert url == f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@{name}:5432/{env['POSTGRES_DB']}"
    client_port = NodeSettings.model_fields["client_port"].default
    for company in NODES:
        check = services[company]["healthcheck"]
        assert check["test"][0] == "CMD" and check["test"][-1] == f"http://127.0.0.1:{client_port}/readyz", check
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)
        assert services[company]["ports"] == [f"127.0.0.1:{'8702' if company == 'acme' else '9702'}:{client_port}"]


def test_dockerfile_runs_the_cli_as_a_user_with_a_data_volume():
    text = DOCKERFILE.read_text("utf-8")
    entrypoint, cmd = _dockerfile_json("ENTRYPOINT"), _dockerfile_json("CMD")
    assert entrypoint == ["agentnet"]
    assert "agentnet" in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    args = _parse(entrypoint + cmd)
    assert (args.command, str(args.data_dir)) == ("run", "/data")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), users
    assert re.search(r'^VOLUME \["/data"\]', text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    health = re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (\[[^\n]*\])$", text, re.M)
    assert health and json.loads(health.group(1))[-1].endswith(":8702/readyz"), health
    assert "postgresql-client" in text and "curl" in text  # backups; the health check's tool
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    for needed in ("pyproject.toml", "README.md", "federation/", "storage/", "node/"):
        assert f"!{needed}" in ignore
        assert f"COPY {needed.rstrip('/')}" in text or needed in text


# --- the same topology, as processes ------------------------------------------------------------


def _map_paths(argv: list[str], mounts: dict[str, Path]) -> list[str]:
    mapped = []
    for token in argv:
        for target, local in mounts.items():
            if token == target or token.startswith(target + "/"):
                token = str(local) + token[len(target):]
                break
        mapped.append(token)
    return mapped


def _cli(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    assert argv[0] == "agentnet"
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENTNET_")}
    return subprocess.run([sys.executable, "-m", "node.main.cli", *argv[1:]], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**base, **(env or {})}, timeout=120, stdin=subprocess.DEVNULL)


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tls_commands_refuse_to_overwrite_and_check_names(tmp_path, capsys):
    assert _main(capsys, "tls", "make-ca", "--out-dir", str(tmp_path / "ca"))[0] == 0
    code, _, err = _main(capsys, "tls", "make-ca", "--out-dir", str(tmp_path / "ca"))
    assert code == 2 and err.startswith("agentnet tls make-ca: ") and "already exists" in err
    assert oct((tmp_path / "ca" / "ca.key").stat().st_mode & 0o777) == oct(0o600)
    code, _, err = _main(capsys, "tls", "issue", "--ca-dir", str(tmp_path / "ca"), "--server-name", "not a name",
                         "--out-dir", str(tmp_path / "x"))
    assert code == 2 and err.startswith("agentnet tls issue: --server-name"), err
    code, _, err = _main(capsys, "tls", "issue", "--ca-dir", str(tmp_path / "none"), "--server-name", "a.example",
                         "--out-dir", str(tmp_path / "x"))
    assert code == 2 and "cannot read the CA" in err, err
    assert not (tmp_path / "x").exists()


@pytest.fixture
async def cluster(tmp_path):
    nodes = await ProcessCluster(tmp_path).open()
    try:
        yield nodes
    finally:
        await nodes.close()


@pytest.fixture
async def two_databases(request):
    request.getfixturevalue("postgres_available")
    urls = [await _create_postgres_database() for _ in NODES]
    try:
        yield dict(zip(NODES, urls, strict=False))
    finally:
        for url in urls:
            await _drop_postgres_database(url)


async def _compose_node(cluster: ProcessCluster, compose: dict, company: str, database_url: str,
                        tls_dir: Path) -> ProcessNode:
    """Set a node up the way its `-init` service does, then run it the way its service does."""
    server = NODES[company]
    data_dir = cluster.root / company
    mounts = {"/data": data_dir, "/tls": tls_dir}
    ports = {name: cluster._new_port() for name in ("admin", "client", "federation")}
    env = {k: _map_paths([v], mounts)[0] for k, v in _environment(compose["services"][company]).items()}
    # What differs on one host: loopback, free ports, the test's database, endpoints by address.
    env.update(AGENTNET_DATABASE_URL=database_url, AGENTNET_CLIENT_HOST="127.0.0.1",
               AGENTNET_ADMIN_PORT=str(ports["admin"]), AGENTNET_CLIENT_PORT=str(ports["client"]),
               AGENTNET_FEDERATION_PORT=str(ports["federation"]),
               AGENTNET_PUBLIC_ENDPOINT=f"https://127.0.0.1:{ports['federation']}")
    (init,) = _agentnet_commands(compose)[f"{company}-init"]
    done = _cli(_map_paths(init, mounts), env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("anadm_") and "Self-signed" not in done.stdout, done.stdout  # the CA's certificate
    # `agentnet run` in tests reads its settings from the file: keep the service's environment there.
    values = tomllib.loads((data_dir / CONFIG_FILE).read_text("utf-8"))
    values.update({k.removeprefix("AGENTNET_").lower(): v for k, v in env.items()})
    write_config(data_dir, values)
    node = cluster.node(server, data_dir, ports, init_output=done.stdout)
    assert node.admin_token == token  # saved where the operator commands look
    await node.start()
    return node


@pytest.mark.postgres
async def test_the_compose_topology_as_processes(compose, cluster, two_databases, tmp_path, capsys):
    tls_dir, ca_dir = tmp_path / "volumes" / "tls", tmp_path / "volumes" / "ca"
    mounts = {"/ca": ca_dir, "/tls": tls_dir}
    for attempt in (1, 2):  # a second `docker compose up` runs ca-init again
        for argv in _agentnet_commands(compose)["ca-init"]:
            # In a thread (cli.main runs its own event loop); these need no process of their own.
            code, out, err = await asyncio.to_thread(_main, capsys, *_map_paths(argv, mounts)[1:])
            assert code == 0, (argv, err)
            assert ("Kept the existing" in out) == (attempt == 2), out
    for server in NODES.values():
        assert {p.name for p in (tls_dir / server).iterdir()} == {"ca.crt", "tls.crt", "tls.key"}
        assert (tls_dir / server / "tls.key").stat().st_mode & 0o077 == 0

    async with cluster.show_logs_on_failure():
        acme = await _compose_node(cluster, compose, "acme", two_databases["acme"], tls_dir)
        globex = await _compose_node(cluster, compose, "globex", two_databases["globex"], tls_dir)
        for node in (acme, globex):
            async with node.http.get(f"{node.client_url}/readyz") as ready:
                assert ready.status == 200, await ready.text()
        tokens = await open_rollout(cluster, acme, globex)
        body = "Crossing from Acme's PostgreSQL to Globex's, over the compose CA's TLS."
        posted = await acme.client(tokens["ops"], "POST", MESSAGES, {"body": body}, expect=201)

        async def arrived():
            messages = (await globex.client(tokens["delivery"], "GET", MESSAGES))["messages"]
            return [m for m in messages if m["id"] == posted["id"] and m["status"] == "sequenced"]

        (seen,) = await cluster.eventually(arrived, "acme's message reached globex")
        assert (seen["body"], seen["sender"]) == (body, "agent:ops@acme.example")
        for node in (globex, acme):
            assert await node.stop() == 0
