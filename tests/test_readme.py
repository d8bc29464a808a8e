"""The README's two commands are the ones that work: CI runs the test command verbatim and the
first one installs and runs the demo (which tests/node/ops/test_demo.py runs)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _two_commands() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, re.S)


def test_the_readme_shows_two_commands_and_ci_runs_the_second_verbatim():
    demo, tests = _two_commands()
    assert demo.endswith("&& .venv/bin/agentnet demo") and "\n" not in demo
    ci = ROOT.joinpath(".ci/run").read_text().strip().splitlines()
    assert tests in ci  # verbatim, before the lint and type checks
