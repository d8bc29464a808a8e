"""Conventions every `agentnet` command shares, so that they read alike: where the data dir
comes from, where the admin token is kept, and the version. Imports nothing heavy (the
parser is built on every run, `--help` included)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

__all__ = ["ADMIN_TOKEN_FILE", "DATA_DIR_HELP", "VersionAction", "add_data_dir", "data_dir", "read_token_file",
           "save_admin_token", "save_token"]

DATA_DIR_HELP = "the node's data dir (default: $AGENTNET_DATA_DIR, else the current directory)"
# The admin token as `agentnet init` and `agentnet admin-token` save it (0600), and where the
# operator commands look for it.
ADMIN_TOKEN_FILE = "admin.token"


def add_data_dir(parser: argparse.ArgumentParser, *, help: str = DATA_DIR_HELP) -> None:
    parser.add_argument("--data-dir", type=Path, help=help)


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("AGENTNET_DATA_DIR") or ".")


def save_admin_token(directory: Path, token: str) -> Path:
    """Write the token to DATA_DIR/admin.token, readable by its owner only; an existing file
    is replaced (the token it held was revoked)."""
    return save_token(directory / ADMIN_TOKEN_FILE, token)


def save_token(path: Path, token: str) -> Path:
    """Write a token to `path`, readable by its owner only, replacing the file whole."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.replace(partial, path)
    return path


def read_token_file(path: Path) -> str:
    """The token in `path`, with a warning on stderr if others may read the file."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        print(f"agentnet: warning: {path} is readable by others (mode {mode:04o}); "
              f"run `chmod 600 {path}`", file=sys.stderr)
    return path.read_text("utf-8").strip()


class VersionAction(argparse.Action):
    """`--version`: looks the installed version up only when asked (it costs tens of ms)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print agentnet's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import version

        print(f"agentnet {version('agent-network')}")
        parser.exit()
