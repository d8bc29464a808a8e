"""`agentnet --help` starts fast: building the parser loads neither the database nor the HTTP
stack nor anything else heavy (its CPU time is measured by `bench/cli_startup.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.process_nodes import REPO_ROOT

HEAVY = ("sqlalchemy", "aiohttp", "asyncpg", "pydantic", "pydantic_settings", "alembic", "cryptography", "nacl",
         "mcp", "prometheus_client", "asyncio", "storage.storage", "node.main.runner", "node.ops.demo")

PROBE = """
import json, sys
from node.main.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(*argv: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["network", "--help"], ["demo", "--help"], ["backup", "--help"],
                                  []])
def test_help_and_usage_errors_load_nothing_heavy(argv):
    loaded = _loaded(*argv)
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, heavy


def test_the_probe_sees_what_a_command_loads():
    """The check can fail: a command that runs loads the stacks it needs."""
    loaded = _loaded("status", "--data-dir", "/nonexistent-agentnet-dir")
    assert {"asyncio", "node.basics.config"} & loaded


def test_the_shell_gets_completions(tmp_path):
    """`eval "$(register-python-argcomplete agentnet)"` (docs/cli.md) asks the command itself."""
    answers = {}
    for line in ("agentnet net", "agentnet network inv", "agentnet invite accept --net"):
        out = tmp_path / "completions.txt"
        env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
               "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
        done = subprocess.run([sys.executable, "-m", "node.main.cli"], env=env, cwd=REPO_ROOT, capture_output=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        answers[line] = out.read_text().split()
    assert answers == {"agentnet net": ["network"], "agentnet network inv": ["invite"],
                       "agentnet invite accept --net": ["--network"]}
