"""The stepped clock the soak's nodes run with: a node's wall clock follows its offset file."""

from __future__ import annotations

import stat
import time

from bench.stepped_node import OffsetClock, write_offset


def test_the_stepped_clock_follows_its_offset_file(tmp_path):
    path = tmp_path / "node.offset"
    clock = OffsetClock(path, recheck_s=0)
    assert abs(clock.now_ms() - time.time() * 1000) < 1000  # no file: the system's time
    write_offset(path, 157_000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert abs(clock.now_ms() - time.time() * 1000 - 157_000) < 1000
    write_offset(path, -30_000)
    assert abs(clock.now_ms() - time.time() * 1000 + 30_000) < 1000
    write_offset(path, 0)
    assert abs(clock.now_ms() - time.time() * 1000) < 1000
