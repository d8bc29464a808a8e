"""CLI start-up: `python -m bench.cli_startup [--runs N] [--before REF]`.

Each command an operator types runs as a new process, so its start-up is its cost. This bench
starts one node (SQLite), then runs each command `--runs` times as `agentnet` would be run
(`python -m node.main.cli ...`: the same interpreter, and the code of the checkout measured) and reports the median CPU time
(user + system, from the children's resource usage) and wall time of one run:

* `--help`: builds the parser and exits (target: under 150 ms of CPU);
* `status`: one admin API call (target: under 300 ms);
* `post`: one post to a private thread with an agent's token (target: under 300 ms).

`--before REF` runs the same commands against the code of git REF (exported to a temporary
directory), with the same node, so the two columns come from one run on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.attacks import _dirty, _export, finish
from bench.nodes import REPO_ROOT, BenchCluster
from bench.report import machine
from node.ops.launcher import entry_module

__all__ = ["main"]

DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "cli_startup.json"
RUNS = 15
TARGETS_MS = {"--help": 150, "status": 300, "post": 300}


def _timed(argv: list[str], code_root: Path, env: dict[str, str]) -> tuple[float, float]:
    """CPU and wall seconds of one run of `argv` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", entry_module(code_root), *argv], cwd=code_root, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"agentnet {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def _measure(commands: dict[str, list[str]], code_root: Path, env: dict[str, str], runs: int) -> dict:
    results = {}
    for name, argv in commands.items():
        _timed(argv, code_root, env)  # warm the file cache and the .pyc files
        samples = [_timed(argv, code_root, env) for _ in range(runs)]
        results[name] = {"cpu_ms": statistics.median(s[0] for s in samples) * 1000,
                         "wall_ms": statistics.median(s[1] for s in samples) * 1000, "runs": runs}
    return results


async def _run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="agentnet-cli-startup-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    document: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                      "targets_ms": TARGETS_MS, "runs": {}}
    try:
        async with BenchCluster(root / "nodes", "sqlite") as cluster:
            (node,) = await cluster.init_nodes("acme.bench")
            await cluster.start(node)
            agent_token = await node.create_agent("ops")
            await node.admin("POST", "/v1/threads", {"name": "ops-log", "title": "Ops log",
                                                     "members": ["agent:ops"]})
            env = {**os.environ, "AGENTNET_ADMIN_TOKEN": node.admin_token, "AGENTNET_TOKEN": agent_token}
            commands = {
                "--help": ["--help"],
                "status": ["status", "--data-dir", str(node.data_dir)],
                "post": ["post", "--data-dir", str(node.data_dir), "ops-log", "start-up bench"],
            }
            plan = [("current", REPO_ROOT, commit + ("+" if _dirty() else ""))]
            if args.before:
                plan.insert(0, ("before", _export(args.before, root / "before-code"), args.before))
            for run, code_root, ref in plan:
                print(f"{run} ({ref}) ...", flush=True)
                results = await asyncio.to_thread(_measure, commands, code_root, env, args.runs)
                document["runs"][run] = {"ref": ref, "results": results}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return finish(document, _table(document), args.out)


def _table(document: dict) -> str:
    runs = document["runs"]
    header = f"{'command':<8}" + "".join(f" {run + ' cpu':>12} {run + ' wall':>13}" for run in runs) + \
        f" {'target cpu':>11}"
    lines = [header]
    for command, target in TARGETS_MS.items():
        cells = "".join(f" {runs[run]['results'][command]['cpu_ms']:>9.0f} ms {runs[run]['results'][command]['wall_ms']:>10.0f} ms"
                        for run in runs)
        lines.append(f"{command:<8}{cells} {target:>8} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_startup", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each command (the median is reported)")
    parser.add_argument("--before", metavar="REF", help="also run the commands with the code of git REF")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
