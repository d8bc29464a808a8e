"""`agentnet backup` and `agentnet restore`: nothing lost, on SQLite and PostgreSQL.

The main test backs up a running member node whose host is down, so its last post is pending
and waits in the outbox; restores the backup into a fresh data dir (and a fresh database);
runs the restored node in place of the original; brings the host back; and checks that every
event is there and the pending post is delivered and sequenced everywhere.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from node.main import cli
from node.ops.backup import terminal_progress
from tests.conftest import REQUIRE_POSTGRES, _create_postgres_database, _drop_postgres_database
from tests.node.federation.test_processes import MESSAGES, open_rollout
from tests.process_nodes import REPO_ROOT, ProcessCluster, ProcessNode

ACME, GLOBEX = "acme.example", "globex.example"


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENTNET_")}
    return subprocess.run([sys.executable, "-m", "node.main.cli", *argv], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**base, **(env or {})}, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
async def cluster(tmp_path):
    nodes = await ProcessCluster(tmp_path).open()
    try:
        yield nodes
    finally:
        await nodes.close()


async def _databases(request):
    """Yields a maker of fresh PostgreSQL databases; drops them all afterwards."""
    request.getfixturevalue("postgres_available")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        message = "pg_dump/pg_restore are not on PATH (Debian: apt-get install postgresql-client)"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    made: list[str] = []

    async def make() -> str:
        made.append(await _create_postgres_database())
        return made[-1]

    try:
        yield make
    finally:
        for url in made:
            await _drop_postgres_database(url)


@pytest.fixture
async def new_database(request):
    async for make in _databases(request):
        yield make


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def make_db(request):
    """None for SQLite; for PostgreSQL, a maker of fresh databases."""
    if request.param == "sqlite":
        yield None
        return
    async for make in _databases(request):
        yield make


async def _rows(node: ProcessNode, token: str) -> list[tuple]:
    messages = (await node.client(token, "GET", MESSAGES + "?limit=200"))["messages"]
    return [(m["id"], m["seq"], m["sender"], m["body"], m["status"]) for m in messages]


async def _queue_to(node: ProcessNode, server: str) -> int:
    peers = {p["server"]: p for p in (await node.admin("GET", "/v1/peers"))["items"]}
    return peers[server]["queue_depth"]


async def test_backup_of_a_running_node_loses_no_event_and_no_pending_delivery(make_db, cluster, tmp_path):
    backend = "postgresql" if make_db else "sqlite"
    async with cluster.show_logs_on_failure():
        acme = await cluster.start_node(ACME)
        globex = await cluster.start_node(GLOBEX, database_url=await make_db() if make_db else None)
        tokens = await open_rollout(cluster, acme, globex)
        for node, handle, body in ((acme, "ops", "Cutover is Thursday."), (globex, "sam", "Validation tomorrow.")):
            await node.client(tokens[handle], "POST", MESSAGES, {"body": body}, expect=201)

        async def both_sequenced():
            rows = await _rows(globex, tokens["delivery"])
            return rows if len(rows) == 2 and all(r[4] == "sequenced" for r in rows) else None

        await cluster.eventually(both_sequenced, "two messages sequenced")

        # The host goes down; Globex's next post waits, pending, in its outbox.
        await acme.kill()
        pending = await globex.client(tokens["delivery"], "POST", MESSAGES, {"body": "Retries validated."}, expect=201)
        assert pending["status"] == "pending"
        before = await _rows(globex, tokens["delivery"])
        network_before = await globex.admin("GET", "/v1/networks/acme-rollout")
        assert len(before) == 3 and network_before["pending_events"] >= 1
        assert await _queue_to(globex, ACME) >= 1

        archive = tmp_path / "globex-backup.tar.gz"
        done = _cli("backup", "--data-dir", str(globex.data_dir), "--output", str(archive))  # while it runs
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # no progress display: stderr is not a terminal
        assert archive.stat().st_mode & 0o777 == 0o600
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
            manifest = json.loads(tar.extractfile("manifest.json").read())
        assert manifest["backend"] == backend and manifest["server_name"] == GLOBEX
        assert {"data/agentnet.toml", "data/signing.key", "data/tls.crt", "data/tls.key", manifest["database"]} <= names
        assert not any(n.startswith("data/node.db") for n in names)

        # The original node is gone; the backup comes back in a new data dir (and database).
        assert await globex.stop() == 0
        restored_dir = tmp_path / "globex-restored"
        target = ["--database-url", await make_db()] if make_db else []
        done = _cli("restore", "--input", str(archive), "--data-dir", str(restored_dir), *target)
        assert done.returncode == 0, done.stderr
        assert (restored_dir / "signing.key").stat().st_mode & 0o777 == 0o600
        assert (restored_dir / "signing.key").read_bytes() == (globex.data_dir / "signing.key").read_bytes()
        shutil.rmtree(globex.data_dir)  # nothing can come from the original any more
        restored = cluster.node(GLOBEX, restored_dir, globex.ports)  # its admin token came back with it
        await restored.start()
        assert await _rows(restored, tokens["delivery"]) == before
        assert await _queue_to(restored, ACME) >= 1

        await acme.start()

        async def delivered():
            views = [await _rows(restored, tokens["sam"]), await _rows(acme, tokens["ops"])]
            done = all(len(v) == 3 and all(r[4] == "sequenced" for r in v) for v in views) and views[0] == views[1]
            return views[0] if done and await _queue_to(restored, ACME) == 0 else None

        after = await cluster.eventually(delivered, "the pending post delivered after the restore", timeout=40)
        assert [r[0] for r in after] == [r[0] for r in before]  # every event, none duplicated
        assert [r[3] for r in after] == [r[3] for r in before]
        assert after[:2] == before[:2] and after[2][1] > after[1][1]
        for node in (restored, acme):
            assert await node.stop() == 0


# --- refusals and details, in one process ----------------------------------------------------------


@pytest.fixture
def sqlite_node(tmp_path, capsys, monkeypatch) -> Path:
    for key in [k for k in os.environ if k.startswith("AGENTNET_")]:
        monkeypatch.delenv(key)
    data_dir = tmp_path / "node"
    assert cli.main(["init", "--server-name", "acme.example", "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    return data_dir


def test_backup_and_restore_refuse_to_overwrite(sqlite_node, tmp_path, capsys):
    archive = tmp_path / "b.tar.gz"
    assert cli.main(["backup", "--data-dir", str(sqlite_node), "--output", str(archive)]) == 0
    assert "Backed up acme.example (sqlite" in capsys.readouterr().out
    assert cli.main(["backup", "--data-dir", str(sqlite_node), "--output", str(archive)]) == 2
    assert capsys.readouterr().err.startswith("agentnet backup: ") and not (tmp_path / ".b.tar.gz.partial").exists()

    assert cli.main(["restore", "--input", str(archive), "--data-dir", str(sqlite_node)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentnet restore: ") and "not an empty directory" in err
    assert cli.main(["restore", "--input", str(archive), "--data-dir", str(tmp_path / "r")]) == 0
    assert "agentnet run --data-dir" in capsys.readouterr().out
    # The restored node has its own database file, not the original's.
    assert (tmp_path / "r" / "node.db").is_file()
    assert "database_url" not in (tmp_path / "r" / "agentnet.toml").read_text()
    assert cli.main(["migrate", "--data-dir", str(tmp_path / "r")]) == 0


def test_restore_refuses_what_is_not_a_backup(sqlite_node, tmp_path, capsys):
    bogus = tmp_path / "bogus.tar.gz"
    with tarfile.open(bogus, "w:gz") as tar:
        body = json.dumps({"format": "agentnet-backup", "version": 1, "backend": "sqlite", "server_name": "x",
                           "database": "database/node.db", "files": ["agentnet.toml", "../escape"]}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    assert cli.main(["restore", "--input", str(bogus), "--data-dir", str(tmp_path / "r")]) == 2
    assert "unsafe path" in capsys.readouterr().err and not (tmp_path / "r").exists()
    (tmp_path / "plain.tar.gz").write_bytes(b"not a tar")
    assert cli.main(["restore", "--input", str(tmp_path / "plain.tar.gz"), "--data-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("agentnet restore: ")


@pytest.mark.postgres
async def test_postgresql_backup_needs_pg_dump_and_an_empty_target(new_database, tmp_path, capsys, monkeypatch):
    for key in [k for k in os.environ if k.startswith("AGENTNET_")]:
        monkeypatch.delenv(key)

    async def main(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli.main, list(argv))  # cli.main runs its own event loop
        out, err = capsys.readouterr()
        return code, out, err

    source = await new_database()
    data_dir, archive, restored = tmp_path / "node", tmp_path / "b.tar.gz", tmp_path / "r"
    code, _, err = await main("init", "--server-name", "acme.example", "--data-dir", str(data_dir),
                              "--database-url", source)
    assert code == 0, err
    with monkeypatch.context() as no_tools:
        no_tools.setenv("PATH", str(Path(sys.executable).parent))
        code, _, err = await main("backup", "--data-dir", str(data_dir), "--output", str(archive))
    assert (code, err.split(":")[0]) == (1, "agentnet backup"), err
    assert "pg_dump is not on PATH" in err and not archive.exists()

    code, _, err = await main("backup", "--data-dir", str(data_dir), "--output", str(archive))
    assert code == 0, err
    # Into the source itself (not empty): refused, and the new data dir is left as it was.
    code, _, err = await main("restore", "--input", str(archive), "--data-dir", str(restored), "--database-url", source)
    assert code == 2 and "not empty" in err, err
    assert not restored.exists()
    code, out, err = await main("restore", "--input", str(archive), "--data-dir", str(restored),
                                "--database-url", await new_database())
    assert code == 0, err
    code, out, err = await main("admin-token", "--data-dir", str(restored))  # the restored database works
    assert code == 0 and out.strip().splitlines()[-1].startswith("anadm_"), err


def test_progress_is_shown_on_a_terminal_only():
    assert terminal_progress(io.StringIO()) is None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    show = terminal_progress(screen)
    show("database", 512, 1024)
    show("database", 1024, 1024)
    show("database", 3 * 2**20, 0)
    assert screen.getvalue() == ("\rdatabase:  50% (512/1024 pages)\033[K\rdatabase: 100% (1024/1024 pages)\033[K\n"
                                 "\rdatabase: 3.0 MiB\033[K")
