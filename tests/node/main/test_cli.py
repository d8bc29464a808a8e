"""`agentnet` as an operator uses it: real files, and `run` as a separate process."""

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys

import aiohttp
import pytest

from node.basics.config import load_settings
from node.main.cli import main
from node.workspace.tokens import hash_token
from storage.storage import Storage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(n: int) -> list[str]:
    """`n` distinct free ports: each socket is held until all are chosen, so none comes twice
    (one at a time, the kernel may hand back the port it just freed)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [str(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _init(tmp_path, capsys, *extra) -> str:
    admin, client, federation = _free_ports(3)
    code = main(["init", "--server-name", "acme.example", "--data-dir", str(tmp_path / "acme"),
                 "--admin-port", admin, "--client-port", client, "--federation-port", federation, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    return captured.out.strip().splitlines()[-1]


async def test_init_writes_settings_key_and_hashed_admin_token(tmp_path, capsys):
    token = await asyncio.to_thread(_init, tmp_path, capsys)
    data_dir = tmp_path / "acme"
    assert token.startswith("anadm_")
    assert stat.S_IMODE(os.stat(data_dir / "signing.key").st_mode) == 0o600
    settings = load_settings(data_dir)
    storage = await Storage.open(settings.resolved_database_url)
    try:
        async with storage.transaction() as tx:
            assert await tx.admin_tokens.prefix_of(hash_token(token)) == token[:10]
            assert (await tx.company.get()).server_name == "acme.example"
    finally:
        await storage.close()
    assert token.encode() not in (data_dir / "node.db").read_bytes()


def test_init_refuses_existing_node_and_bad_names(tmp_path, capsys):
    _init(tmp_path, capsys)
    assert main(["init", "--server-name", "acme.example", "--data-dir", str(tmp_path / "acme")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["init", "--server-name", "Not A Name", "--data-dir", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b" / "agentnet.toml").exists()


def test_failed_init_leaves_nothing_behind(tmp_path, capsys):
    code = main(["init", "--server-name", "acme.example", "--data-dir", str(tmp_path / "acme"),
                 "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot open the database" in err and "check database_url" in err
    assert err.count("\n") == 1 and "sqlalche.me" not in err  # one line, in the driver's words
    assert sorted(os.listdir(tmp_path / "acme")) == []


def test_admin_token_reset_revokes_the_old_one(tmp_path, capsys):
    old = _init(tmp_path, capsys)
    assert main(["admin-token", "--data-dir", str(tmp_path / "acme")]) == 0
    new = capsys.readouterr().out.strip().splitlines()[-1]
    assert new != old and new.startswith("anadm_")

    async def check():
        storage = await Storage.open(load_settings(tmp_path / "acme").resolved_database_url)
        try:
            async with storage.transaction() as tx:
                return (await tx.admin_tokens.prefix_of(hash_token(old)),
                        await tx.admin_tokens.prefix_of(hash_token(new)))
        finally:
            await storage.close()

    assert asyncio.run(check()) == (None, new[:10])
    assert (tmp_path / "acme" / "admin.token").read_text().strip() == new  # the saved one is the new one


def test_init_saves_the_admin_token_for_the_operator_commands_owner_only(tmp_path, capsys):
    token = _init(tmp_path, capsys)
    saved = tmp_path / "acme" / "admin.token"
    assert saved.read_text().strip() == token
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_init_can_leave_the_token_unsaved(tmp_path, capsys):
    token = _init(tmp_path, capsys, "--no-save-token")
    assert token.startswith("anadm_")
    assert not (tmp_path / "acme" / "admin.token").exists()


def test_a_token_file_others_can_read_is_used_with_a_warning(tmp_path, capsys):
    _init(tmp_path, capsys)
    saved = tmp_path / "acme" / "admin.token"
    saved.chmod(0o644)
    code = main(["status", "--data-dir", str(tmp_path / "acme"), "--admin-url", f"http://127.0.0.1:{_free_port()}"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the admin listener" in err  # the token was read and used
    assert f"{saved} is readable by others (mode 0644)" in err and f"chmod 600 {saved}" in err
    saved.chmod(0o600)
    main(["status", "--data-dir", str(tmp_path / "acme"), "--admin-url", f"http://127.0.0.1:{_free_port()}"])
    assert "readable by others" not in capsys.readouterr().err


def test_the_data_dir_defaults_to_agentnet_data_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AGENTNET_DATA_DIR", str(tmp_path / "from-env"))
    admin, client, federation = _free_ports(3)
    assert main(["init", "--server-name", "acme.example", "--admin-port", admin,
                 "--client-port", client, "--federation-port", federation]) == 0
    assert (tmp_path / "from-env" / "agentnet.toml").is_file()
    assert f"created in {tmp_path / 'from-env'}" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == "agentnet 0.1.0"


def test_run_refuses_a_readable_key_and_a_behind_schema(tmp_path, capsys, monkeypatch):
    _init(tmp_path, capsys)
    key = tmp_path / "acme" / "signing.key"
    key.chmod(0o644)
    assert main(["run", "--data-dir", str(tmp_path / "acme")]) == 2
    assert "chmod 600" in capsys.readouterr().err
    key.chmod(0o600)
    monkeypatch.setenv("AGENTNET_SERVER_NAME", "other.example")
    assert main(["run", "--data-dir", str(tmp_path / "acme")]) == 2
    assert "refusing to serve under two names" in capsys.readouterr().err


def test_run_refuses_unmigrated_database_when_auto_migrate_is_off(tmp_path, capsys, monkeypatch):
    _init(tmp_path, capsys)
    (tmp_path / "acme" / "node.db").unlink()
    monkeypatch.setenv("AGENTNET_AUTO_MIGRATE", "false")
    assert main(["run", "--data-dir", str(tmp_path / "acme")]) == 2
    assert "agentnet migrate" in capsys.readouterr().err


async def test_run_serves_both_listeners_and_stops_on_sigterm(tmp_path, capsys):
    token = await asyncio.to_thread(_init, tmp_path, capsys)
    settings = load_settings(tmp_path / "acme")
    proc = subprocess.Popen([sys.executable, "-m", "node.main.cli", "run", "--data-dir", str(tmp_path / "acme")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as http:
            admin = f"http://127.0.0.1:{settings.admin_port}"
            for _ in range(100):
                try:
                    async with http.get(f"{admin}/v1/status", headers={"Authorization": f"Bearer {token}"}) as r:
                        status = await r.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the node did not start: " + proc.stdout.read1().decode())
            assert status["server_name"] == "acme.example"
            async with http.get(f"http://127.0.0.1:{settings.client_port}/v1/whoami") as r:
                assert r.status == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.to_thread(proc.communicate, timeout=20))[0].decode()
    assert proc.returncode == 0, output
    assert "ready" in output and "stopping" in output
    assert token not in output


def test_keys_rotate_swaps_the_key_file_and_records_the_handover(tmp_path, capsys):
    from federation.keys import SigningKey

    _init(tmp_path, capsys)
    key_path = tmp_path / "acme" / "signing.key"
    old = SigningKey.load(key_path)
    assert main(["keys", "rotate", "--data-dir", str(tmp_path / "acme")]) == 0
    assert old.key_id in capsys.readouterr().out
    new = SigningKey.load(key_path)
    assert new.key_id != old.key_id
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert not (tmp_path / "acme" / "signing.key.new").exists()

    async def history():
        storage = await Storage.open(load_settings(tmp_path / "acme").resolved_database_url)
        try:
            async with storage.network_transaction() as tx:
                return {r.key_id: (r.valid_until is not None, r.rotation_notice is not None)
                        for r in await tx.node_keys.all()}
        finally:
            await storage.close()

    assert asyncio.run(history()) == {old.key_id: (True, False), new.key_id: (False, True)}


def test_a_taken_port_is_exit_1_and_says_what_to_do(tmp_path, capsys):
    _init(tmp_path, capsys)
    settings = load_settings(tmp_path / "acme")
    with socket.socket() as taken:
        taken.bind((settings.admin_host, settings.admin_port))
        taken.listen()
        code = main(["run", "--data-dir", str(tmp_path / "acme")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"cannot listen for the admin API on 127.0.0.1:{settings.admin_port}" in err and "admin_port" in err
