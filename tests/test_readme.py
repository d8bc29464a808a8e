"""The README's commands are the ones that work: CI runs its test command verbatim, the first
installs and runs the demo (which tests/node/ops/test_demo.py runs), and the two-company
walkthrough runs here as written, taken from the README itself so the two cannot drift apart."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WALKTHROUGH = "### Two companies on one machine"
# A person types the commands seconds apart; federation is asynchronous, so a command that
# needs the other node (an accept, the host's thread naming a member's attached agent) is
# tried again for this long before the test fails.
RETRY_FOR_S = 30.0


def _section(heading: str) -> str:
    """From `heading` to the next heading outside a code block (a `#` line in one is a comment)."""
    lines = ROOT.joinpath("README.md").read_text().split(heading + "\n", 1)[1].splitlines()
    taken, fenced = [], False
    for line in lines:
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:
            break
        taken.append(line)
    return "\n".join(taken)


def _blocks(heading: str) -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", _section(heading), re.S)


def _commands(block: str) -> list[str]:
    """Shell commands, continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_shows_two_commands_and_ci_runs_the_second_verbatim():
    demo, tests = _blocks("## The two commands")
    assert demo.endswith("&& .venv/bin/agentnet demo") and "\n" not in demo
    ci = ROOT.joinpath(".ci/run").read_text().strip().splitlines()
    assert tests in ci


def test_the_walkthrough_is_found_and_joined():
    commands = _commands(_blocks(WALKTHROUGH)[0])
    assert commands[0].startswith("agentnet init --server-name acme.example") and "--tls-ca-file" in commands[0]
    assert sum(c.endswith("&") for c in commands) == 2
    assert commands[-1].startswith("agentnet read")


def _ports_in(commands: list[str]) -> set[int]:
    return {int(p) for c in commands for p in re.findall(r"(?:port |127\.0\.0\.1:)(\d{4,5})", c)}


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_two_company_walkthrough_runs_as_written(tmp_path):
    commands = _commands(_blocks(WALKTHROUGH)[0])
    taken = sorted(p for p in _ports_in(commands) if _taken(p))
    if taken:
        pytest.fail(f"the walkthrough's ports {taken} are in use on this machine; free them to run it")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTNET_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    background: list[subprocess.Popen] = []
    outputs: list[str] = []
    try:
        for command in commands:
            if command.endswith("&"):
                background.append(subprocess.Popen(["bash", "-c", command[:-1]], cwd=tmp_path, env=env,
                                                   start_new_session=True))
                continue
            deadline = time.monotonic() + RETRY_FOR_S
            while True:
                done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                                      text=True, timeout=120)
                if done.returncode == 0 and (not command.startswith("agentnet read")
                                             or "Ready for Thursday." in done.stdout):
                    outputs.append(done.stdout)
                    break
                if time.monotonic() > deadline:
                    logs = "".join(f"\n--- {p.name} ---\n{p.read_text()[-3000:]}" for p in tmp_path.glob("*.log"))
                    pytest.fail(f"`{command}` still failed after {RETRY_FOR_S:.0f} s "
                                f"(exit {done.returncode}):\n{done.stdout}{done.stderr}{logs}")
                time.sleep(0.5)
    finally:
        for proc in background:
            with_group = os.getpgid(proc.pid)
            os.killpg(with_group, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(with_group, signal.SIGKILL)
                proc.wait()
    assert "Ready for Thursday." in outputs[-1]
    assert "agent:ops@acme.example" in outputs[-1]  # shown on Globex's node, from Acme's agent
    for name in ("ops.token", "delivery.token", "acme/admin.token", "globex/admin.token"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    assert "anagt_" not in "".join(outputs)  # the agents' tokens went to their files, never to the screen
