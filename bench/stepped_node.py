"""`python -m bench.stepped_node --data-dir D --offset-file F`: `agentnet run` with a wall clock
the soak can step.

The node gets a `node.basics.clock.Clock` whose time is the system's plus an offset in milliseconds
read from F, so the soak steps one node's clock forward or back by rewriting that file,
without touching the machine's clock. The file is looked at no more than every 20 ms and read
again only when it was replaced. Everything that reads the wall clock in a node goes through
its `Clock`; asyncio's timers run on the monotonic clock and are not stepped, as on a real
machine whose wall clock NTP steps. TLS certificate checks use the real time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from node.basics.config import load_settings
from node.basics.errors import ConfigError
from node.basics.log_setup import configure_logging
from node.main.runner import serve

__all__ = ["OffsetClock", "main", "write_offset"]

# Often enough that a step shows within one request; rarely enough to cost nothing.
RECHECK_S = 0.02


class OffsetClock:
    def __init__(self, offset_file: Path, *, recheck_s: float = RECHECK_S) -> None:
        self._path = offset_file
        self._recheck_s = recheck_s
        self._next_check = 0.0
        self._seen: tuple[int, int, int] | None = None
        self._offset_ms = 0

    def now_ms(self) -> int:
        mono = time.monotonic()
        if mono >= self._next_check:
            self._next_check = mono + self._recheck_s
            self._reload()
        return time.time_ns() // 1_000_000 + self._offset_ms

    def _reload(self) -> None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            self._seen, self._offset_ms = None, 0
            return
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return
        try:
            self._offset_ms = int(self._path.read_text().strip() or "0")
        except (OSError, ValueError):
            return  # caught mid-write by someone else; the next look reads it
        self._seen = seen


def write_offset(path: Path, offset_ms: int) -> None:
    """Replace the file in one step, so a node never reads half of it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{offset_ms}\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stepped_node", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--offset-file", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.data_dir)
        configure_logging(settings.log_level, as_json=settings.log_json)
        asyncio.run(serve(settings, clock=OffsetClock(args.offset_file)))
    except ConfigError as e:
        print(f"stepped_node: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
