"""Conventions every `agentnet` command shares, so that they read alike: where the data dir
comes from, where the admin token is kept, and the version. Imports nothing heavy (the
parser is built on every run, `--help` included)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from node.basics.errors import ConfigError

__all__ = [
    "ADMIN_TOKEN_FILE",
    "DATA_DIR_HELP",
    "VersionAction",
    "add_data_dir",
    "data_dir",
    "listener_url",
    "parse_time",
    "read_at_most",
    "read_token_file",
    "save_admin_token",
    "save_token",
]

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


# The listeners' defaults, as `node.basics.config.NodeSettings` declares them
# (tests/node/ops/test_arguments.py holds the two to the same answers).
_LISTENER_DEFAULTS = {"admin": ("127.0.0.1", 8701), "client": ("127.0.0.1", 8702)}


def listener_url(directory: Path, listener: str) -> str:
    """The admin or client listener's URL, from DATA_DIR/agentnet.toml and its AGENTNET_*
    overrides, read without the full settings model: an operator's command needs two values,
    and the model costs it about 0.3 s of start-up. The node validates the rest when it runs."""
    path = directory / "agentnet.toml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `agentnet init` first or pass the right --data-dir")
    try:
        values = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    default_host, default_port = _LISTENER_DEFAULTS[listener]
    env = {k.upper(): v for k, v in os.environ.items()}
    host = env.get(f"AGENTNET_{listener.upper()}_HOST") or values.get(f"{listener}_host") or default_host
    port = env.get(f"AGENTNET_{listener.upper()}_PORT") or values.get(f"{listener}_port") or default_port
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise ConfigError(f"{listener}_port: {port!r} is not a port number") from None
    if not 1 <= number <= 65535:
        raise ConfigError(f"{listener}_port: {number} is not a port number (1-65535)")
    host = str(host)
    return f"http://[{host}]:{number}" if ":" in host else f"http://{host}:{number}"


def parse_time(text: str) -> int:
    """An ISO 8601 date or time from the command line, as ms since the epoch (UTC unless it
    names its zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-12-01 or 2026-12-01T09:30Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def read_at_most(path: Path, limit: int) -> bytes | None:
    """The file's bytes, read no further than `limit` + 1 (a huge or endless file costs no more);
    None when it is longer than `limit`. OSError as `open` raises it."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data

