"""Every file a node keeps in its data dir is its user's alone (0600, the dir 0700): made so by
`agentnet init` and `agentnet run` as separate processes (run from a test whose own umask is
the usual 022), and narrowed at start when an older node's files are open to others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.basics.config import write_config
from node.basics.file_modes import narrow_modes
from storage.storage import Storage
from tests.process_nodes import ProcessCluster

ACME = "acme.example"


def _modes(data_dir: Path) -> dict[str, int]:
    """Permission bits of the data dir (as ".") and of everything in it, at any depth."""
    found = {".": stat.S_IMODE(data_dir.lstat().st_mode)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _open_to_others(data_dir: Path) -> dict[str, str]:
    return {name: oct(mode) for name, mode in _modes(data_dir).items() if mode & 0o077}


@pytest.fixture
def usual_umask():
    """022, as most logins have: without their own care, the node's processes would make 0644 files."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
async def cluster(tmp_path, usual_umask):
    nodes = await ProcessCluster(tmp_path).open()
    try:
        yield nodes
    finally:
        await nodes.close()


async def test_init_and_run_leave_every_file_owner_only_and_run_narrows_older_ones(cluster):
    node = await cluster.init_node(ACME)
    data_dir = node.data_dir
    # The harness wrote its own tls.crt over init's (an outsider's file, 0644); all else is init's.
    assert _open_to_others(data_dir) == {"tls.crt": "0o644"}
    assert {"agentnet.toml", "node.db", "signing.key", "tls.key"} <= set(_modes(data_dir))

    # A node from before: settings, database and the dir itself open to others.
    (data_dir / "agentnet.toml").chmod(0o644)
    (data_dir / "node.db").chmod(0o644)
    data_dir.chmod(0o755)
    await node.start()
    log = node.log_tail(200)
    for name in ("agentnet.toml", "node.db", "tls.crt"):
        assert f"{data_dir / name} was open to others (mode 0644); narrowed to 0600" in log, log
    assert f"{data_dir} was open to others (mode 0755); narrowed to 0700" in log
    assert _open_to_others(data_dir) == {}

    # A run that writes: the database (WAL, so -wal and -shm appear) and the node's log.
    ops = await node.create("agent", "ops", "Ops")
    await node.admin("POST", "/v1/threads", {"name": "ops-log", "title": "Log", "members": ["agent:ops"]},
                     expect=201)
    await node.client(ops, "POST", "/v1/threads/ops-log/messages", {"body": "written"}, expect=201)
    modes = _modes(data_dir)
    assert {"node.db-wal", "node.db-shm"} <= set(modes)
    assert _open_to_others(data_dir) == {}
    assert set(modes.values()) == {0o600, 0o700} and modes["."] == 0o700
    assert await node.stop() == 0
    assert _open_to_others(data_dir) == {}

    await node.start()  # nothing left to narrow: no warning the second time
    assert "open to others" not in node.log_tail(200).split(f"=== run 2 of {ACME} ===")[1]
    assert await node.stop() == 0


def test_narrowing_takes_group_and_world_bits_only_and_leaves_links_and_subdirs(tmp_path):
    data_dir = tmp_path / "node"
    (data_dir / "inner").mkdir(parents=True)
    data_dir.chmod(0o750)
    for name, mode in (("node.db", 0o664), ("tls.crt", 0o444), ("signing.key", 0o600)):
        (data_dir / name).write_text(name)
        (data_dir / name).chmod(mode)
    outside = tmp_path / "shared.pem"
    outside.write_text("the operator's")
    outside.chmod(0o644)
    (data_dir / "ca.pem").symlink_to(outside)
    (data_dir / "inner" / "notes").write_text("not the node's")
    (data_dir / "inner" / "notes").chmod(0o644)

    narrowed = {p.path.name: (oct(p.was), oct(p.now)) for p in narrow_modes(data_dir)}
    assert narrowed == {"node": ("0o750", "0o700"), "node.db": ("0o664", "0o600"), "tls.crt": ("0o444", "0o400")}
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link's target is not the node's
    assert stat.S_IMODE((data_dir / "inner" / "notes").stat().st_mode) == 0o644
    assert narrow_modes(data_dir) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_owner_is_reported_not_changed(tmp_path):
    (tmp_path / "node.db").write_text("x")
    (tmp_path / "node.db").chmod(0o644)
    os.chown(tmp_path / "node.db", 54321, 54321)
    tmp_path.chmod(0o700)
    (found,) = narrow_modes(tmp_path)
    assert (found.path.name, found.was, found.now, found.error) == ("node.db", 0o644, None, "owned by another user")
    assert stat.S_IMODE((tmp_path / "node.db").stat().st_mode) == 0o644


async def test_a_new_sqlite_database_and_its_wal_are_owner_only_whatever_the_umask(tmp_path, usual_umask):
    storage = await Storage.open(f"sqlite:///{tmp_path / 'node.db'}")
    try:
        async with storage.transaction() as tx:
            await tx.company.create(server_name=ACME, display_name="Acme", now=1)
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        await storage.close()
    assert {"node.db", "node.db-wal", "node.db-shm"} <= set(files)
    assert set(files.values()) == {0o600}, files


def test_settings_are_written_owner_only_even_over_an_older_file(tmp_path, usual_umask):
    path = tmp_path / "agentnet.toml"
    path.write_text("old = 1\n")
    path.chmod(0o644)
    write_config(tmp_path, {"server_name": ACME, "database_url": "postgresql://node:secret@db/node"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert 'database_url = "postgresql://node:secret@db/node"' in path.read_text()
