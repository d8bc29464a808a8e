"""`agentnet demo` as a user runs it: a subprocess, its output and its exit code. The demo
starts its own node processes, so each test also checks that none is left running."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.ops import demo
from node.ops.demo import ACME, GLOBEX, INITECH, INITECH_LINE, STORY

REPO_ROOT = Path(__file__).resolve().parents[3]
DEMO_TIMEOUT_S = 120


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTNET_")}
    env |= {"TMPDIR": str(tmp_path), "COLUMNS": "100", "PYTHONUNBUFFERED": "1"}
    return env


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.main.cli", "demo", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=_env(tmp_path), timeout=DEMO_TIMEOUT_S, stdin=subprocess.DEVNULL)


def _columns(output: str, count: int) -> list[str]:
    """Each node's column of the side-by-side view, joined into one line of words."""
    view = output.split("as each node stores it\n", 1)[1].split("\nIdentical on all", 1)[0]
    columns: list[list[str]] = [[] for _ in range(count)]
    for line in view.splitlines()[2:]:  # past the heading and the rule
        cells = line.split(" │ ") if " │ " in line else [line]
        for i, cell in enumerate(cells):
            columns[i].append(cell.strip())
    return [" ".join(" ".join(c).split()) for c in columns]


def _assert_in_order(text: str, bodies: list[str]) -> None:
    at = -1
    for body in bodies:
        found = text.find(body, at + 1)
        assert found > at, f"{body!r} missing or out of order in {text!r}"
        at = found


def _assert_nodes_gone(output: str, count: int) -> None:
    pids = [int(p) for p in re.findall(r"is running \(pid (\d+)", output)]
    assert len(pids) == count, output
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _check_run(done: subprocess.CompletedProcess, companies: list, story: list) -> None:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    out = done.stdout
    bodies = [body for _, _, body in story]
    for column in _columns(out, len(companies)):
        _assert_in_order(column, bodies)
    assert f"Identical on all {len(companies)} nodes: {len(story)} messages" in out
    for company in companies:
        assert f"{company.server}'s copy" in out
        for item in ("private thread name", "private message", "knowledge title", "knowledge body"):
            assert re.search(rf"^  PASS  {company.name} {item}: only in {re.escape(company.server)}; absent",
                             out, re.M), out
        assert company.private_message in out.split("What each side holds privately", 1)[1]
    assert "FAIL" not in out
    assert "Demo passed" in out
    _assert_nodes_gone(out, len(companies))
    assert len(re.findall(r"^Stopped \S+ \(pid \d+, exit 0\)$", out, re.M)) == len(companies)


def test_demo_runs_the_story_on_two_nodes_and_leaves_nothing_behind(tmp_path):
    done = _demo(tmp_path)
    _check_run(done, [ACME, GLOBEX], list(STORY))
    root = re.search(r"on loopback, in (\S+)", done.stdout).group(1)
    assert Path(root).parent == tmp_path
    assert not Path(root).exists()  # the throwaway data is gone


def test_demo_with_three_nodes_kept_for_exploring(tmp_path):
    keep = tmp_path / "kept"
    done = _demo(tmp_path, "--nodes", "3", "--keep", str(keep))
    _check_run(done, [ACME, GLOBEX, INITECH], [*STORY, INITECH_LINE])
    assert "PASS  Initech private message: only in initech.example; absent from acme.example, globex.example" \
        in done.stdout
    tokens_file = keep / "tokens.json"
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    tokens = json.loads(tokens_file.read_text())
    assert set(tokens) == {ACME.server, GLOBEX.server, INITECH.server}
    assert tokens[ACME.server]["admin_token"].startswith("anadm_")
    assert set(tokens[GLOBEX.server]["tokens"]) == {"delivery", "sam"}
    for company in (ACME, GLOBEX, INITECH):
        data_dir = keep / company.server
        assert (data_dir / "agentnet.toml").is_file() and (data_dir / "node.db").is_file()
        assert stat.S_IMODE((data_dir / "admin.token").stat().st_mode) == 0o600
        assert f"agentnet run --data-dir {data_dir}" in done.stdout
        assert (data_dir / "node.log").is_file()
    assert str(tokens_file) in done.stdout
    # All it kept is its user's alone: settings, databases, keys, certificates, logs, tokens, the CA.
    modes = {str(p.relative_to(keep)): stat.S_IMODE(p.lstat().st_mode) for p in [keep, *keep.rglob("*")]}
    assert {name: oct(mode) for name, mode in modes.items() if mode & 0o077} == {}


def test_keep_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "something").write_text("mine")
    done = _demo(tmp_path, "--keep", str(tmp_path / "kept"))
    assert done.returncode == 2
    assert "not an empty directory" in done.stderr
    assert (tmp_path / "kept" / "something").read_text() == "mine"


def test_ctrl_c_stops_every_node(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "node.main.cli", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, env=_env(tmp_path),
                            stdin=subprocess.DEVNULL)
    seen = []
    try:
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while len(re.findall(r"is running \(pid", "".join(seen))) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "".join(seen)
            seen.append(line)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest
    _assert_nodes_gone(out, 2)
    assert len(re.findall(r"^Stopped \S+ \(pid \d+, exit", out, re.M)) == 2, out


async def test_a_node_that_cannot_start_fails_the_demo_with_its_log(tmp_path, monkeypatch, capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_ports = demo.free_ports
    monkeypatch.setattr(demo, "free_ports", lambda count: [taken.getsockname()[1], *real_free_ports(count - 1)])
    try:
        code = await demo.run_demo(argparse.Namespace(keep=tmp_path / "kept", nodes=2, quiet=False))
    finally:
        taken.close()
    out, err = capsys.readouterr()
    assert code == 1
    assert re.search(r"FAILED: acme.example exited with \d+ while starting", err), err
    assert "address already in use" in err
    assert f"last lines of {tmp_path / 'kept' / 'acme.example' / 'node.log'}" in err
    _assert_nodes_gone(out, 0)  # acme never ran; globex was started, then stopped
    assert re.search(r"^Stopped globex.example \(pid \d+, exit", out, re.M), out
