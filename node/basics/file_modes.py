"""Owner-only files: what a node keeps in its data dir is readable by its own user alone.

The data dir holds the company's database, settings, admin token, TLS key and signing key.
`agentnet` runs with umask 077 (`node.main.cli`), so whatever it, SQLite or a library creates there
is 0600 (directories 0700), and the writers of secrets pass 0600 themselves. A node made
before that, or a file copied in by hand, may still be readable by group or world:
`agentnet run` narrows those at start and logs a warning naming each one.

Narrowed, not refused: taking group and world bits away never costs the node access to its
own files, while refusing would stop every node made before this change from starting after
an upgrade. The signing key keeps its hard refusal (`federation.keys`): whoever read it can
sign as the company, and only a key rotation undoes that, so the operator must decide.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "Narrowed", "narrow_modes"]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


@dataclass(frozen=True, slots=True)
class Narrowed:
    path: Path
    was: int  # the permission bits found
    now: int | None  # the bits set; None if they could not be changed...
    error: str | None = None  # ...and why (another owner, a read-only mount)


def narrow_modes(data_dir: Path) -> list[Narrowed]:
    """Take group and world bits off `data_dir` and every regular file directly in it.

    Only the top level: that is where a node writes, and a data dir set inside something
    larger must not have the rest changed. Symbolic links are left alone (their targets are
    not the node's to change); so are files of another owner, which are reported instead.
    """
    found = [(data_dir, PRIVATE_DIR)]
    with os.scandir(data_dir) as entries:
        found += [(Path(e.path), PRIVATE_FILE) for e in entries if e.is_file(follow_symlinks=False)]
    changed = []
    for path, wanted in found:
        try:
            info = path.lstat()
        except FileNotFoundError:  # gone meanwhile (a SQLite -shm at shutdown of another process)
            continue
        mode = stat.S_IMODE(info.st_mode)
        if not mode & 0o077:
            continue
        if info.st_uid != os.geteuid():
            changed.append(Narrowed(path, mode, None, "owned by another user"))
            continue
        try:
            os.chmod(path, mode & wanted)
        except OSError as e:
            changed.append(Narrowed(path, mode, None, e.strerror))
        else:
            changed.append(Narrowed(path, mode, mode & wanted))
    return changed
