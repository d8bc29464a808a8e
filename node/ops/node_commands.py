"""Operations commands: `agentnet tls make-ca|issue`, `agentnet backup`, `agentnet restore`.

Each handler returns its exit code (0 done, 1 could not do it, 2 wrong usage or settings) and
reports a failure as one line on stderr, `agentnet <command>: ...`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from federation.errors import InvalidIdentifier
from federation.identifiers import validate_server_name
from node.basics.errors import ConfigError
from node.federation.tls import SELF_SIGNED_DAYS
from node.ops.arguments import add_data_dir
from storage.errors import StorageError

if TYPE_CHECKING:
    from node.ops.tls_ca import Issued

# `node.ops.tls_ca` (and with it `cryptography`) and `node.ops.backup` (asyncpg, tarfile) are imported
# by their commands: `agentnet run` never needs them.

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    tls = sub.add_parser("tls", help="a private CA for federation TLS",
                         description="Make a private CA and issue node certificates from it, for partners who "
                                     "trust one CA for federation TLS (docs/operations.md shows the exchange).")
    tls_sub = tls.add_subparsers(dest="tls_command", required=True)
    make_ca = tls_sub.add_parser("make-ca", help="create a CA: OUT_DIR/ca.crt and OUT_DIR/ca.key (0600)")
    make_ca.add_argument("--out-dir", required=True, type=Path)
    make_ca.add_argument("--name", default="Agent Network private CA", help="the CA's common name")
    make_ca.add_argument("--days", type=int, help="how long the CA is valid (default: ten years)")
    make_ca.add_argument("--exist-ok", action="store_true", help="succeed, changing nothing, if the CA exists")
    make_ca.set_defaults(handler=_make_ca)

    issue = tls_sub.add_parser("issue", help="issue a node certificate: OUT_DIR/tls.crt, tls.key (0600), ca.crt")
    issue.add_argument("--ca-dir", required=True, type=Path, help="the directory `tls make-ca` wrote")
    issue.add_argument("--server-name", required=True, help="the node's server name, e.g. acme.example")
    issue.add_argument("--out-dir", required=True, type=Path)
    issue.add_argument("--days", type=int, default=SELF_SIGNED_DAYS)
    issue.add_argument("--exist-ok", action="store_true", help="succeed, changing nothing, if the files exist")
    issue.set_defaults(handler=_issue)

    save = sub.add_parser("backup", help="write a consistent backup of a node (database, settings, keys)",
                          description="Write a consistent backup of a node (database, settings, keys, "
                                      "certificates) to one archive, mode 0600, while it runs or not.")
    add_data_dir(save)
    save.add_argument("--output", required=True, type=Path, help="the archive to create (.tar.gz, mode 0600)")
    save.set_defaults(handler=_backup)

    load = sub.add_parser("restore", help="restore a backup into a new data dir (and an empty database)",
                          description="Restore a backup made by `agentnet backup` into a new data dir, and "
                                      "into an empty database (SQLite in the data dir, or --database-url).")
    load.add_argument("--input", required=True, type=Path, help="an archive written by `agentnet backup`")
    load.add_argument("--data-dir", required=True, type=Path, help="empty or absent")
    load.add_argument("--database-url", help="the empty database to restore into (default: the backup's "
                                             "settings; SQLite: node.db in the new data dir)")
    load.set_defaults(handler=_restore)


async def _make_ca(args: argparse.Namespace) -> int:
    from node.ops import tls_ca

    if args.days is not None and args.days < 1:
        return _fail(args, "--days must be at least 1", EXIT_USAGE)
    try:
        made = tls_ca.make_ca(args.out_dir, name=args.name, now=_now(), days=args.days or tls_ca.CA_DAYS,
                              exist_ok=args.exist_ok)
    except ConfigError as e:
        return _fail(args, str(e), EXIT_USAGE)
    _report(made, "CA")
    return EXIT_OK


async def _issue(args: argparse.Namespace) -> int:
    from node.ops import tls_ca

    if args.days < 1:
        return _fail(args, "--days must be at least 1", EXIT_USAGE)
    try:
        server_name = validate_server_name(args.server_name)
    except InvalidIdentifier as e:
        return _fail(args, f"--server-name: {e}", EXIT_USAGE)
    try:
        issued = tls_ca.issue(args.ca_dir, args.out_dir, server_name=server_name, now=_now(), days=args.days,
                              exist_ok=args.exist_ok)
    except ConfigError as e:
        return _fail(args, str(e), EXIT_USAGE)
    _report(issued, f"certificate for {server_name}")
    return EXIT_OK


async def _backup(args: argparse.Namespace) -> int:
    from node.ops import backup as backups

    try:
        from node.basics.config import load_settings

        settings = load_settings(args.data_dir)
        done = await backups.backup(settings, args.output, now=_now(),
                                    progress=backups.terminal_progress(sys.stderr))
    except ConfigError as e:
        return _fail(args, str(e), EXIT_USAGE)
    except (backups.BackupFailed, StorageError, OSError) as e:
        return _fail(args, str(e), EXIT_FAILED)
    print(f"Backed up {done.server_name} ({done.backend}, {len(done.files)} files) to {done.path} (mode 0600)")
    for path in done.not_included:
        print(f"  not included, outside the data dir: {path} (back it up separately)")
    return EXIT_OK


async def _restore(args: argparse.Namespace) -> int:
    from node.ops import backup as backups

    try:
        done = await backups.restore(args.input, args.data_dir, database_url=args.database_url)
    except ConfigError as e:
        return _fail(args, str(e), EXIT_USAGE)
    except (backups.BackupFailed, StorageError, OSError) as e:
        return _fail(args, str(e), EXIT_FAILED)
    print(f"Restored {done.server_name} ({done.backend}) into {done.data_dir}.")
    print(f"Start it with: agentnet run --data-dir {done.data_dir}")
    return EXIT_OK


def _report(made: Issued, what: str) -> None:
    verb = "Wrote" if made.created else "Kept the existing"
    print(f"{verb} {what}: {', '.join(str(p) for p in made.paths)}")
    print(f"  SHA-256 fingerprint {made.fingerprint}")


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    command = f"tls {args.tls_command}" if args.command == "tls" else args.command
    print(f"agentnet {command}: {message}", file=sys.stderr)
    return code


def _now() -> datetime:
    return datetime.now(UTC)
