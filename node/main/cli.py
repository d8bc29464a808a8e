"""`agentnet`: set up and run a node.

Exit codes: 0 done; 1 the node could not do it (database unreachable, port taken);
2 the command or the settings are wrong. Errors are one line on stderr.

Start-up matters for a command an operator types: building the parser imports nothing but
argparse and the command modules' parser tables, and each command imports what it needs when
it runs (`tests/node/main/test_cli_startup.py` holds `--help` to that).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from federation.errors import KeyFileError
from node.basics.errors import CannotListen, ConfigError
from node.ops import admin_commands, export_commands, node_commands
from node.ops.arguments import VersionAction, add_data_dir, data_dir, save_admin_token
from storage.errors import StorageConfigError, StorageError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentnet", description="Run an Agent Network node.",
                                     epilog=admin_commands.EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=description or summary[0].upper() + summary[1:] + ".")

    init = command("init", "create a node: settings, signing key, TLS certificate, database, admin token",
                   description="Create a node in its data dir: settings (agentnet.toml), a signing key, a "
                               "self-signed TLS certificate, the database, and the first admin token, saved to "
                               "DATA_DIR/admin.token (0600) where the operator commands find it.")
    init.add_argument("--server-name", required=True, help="public name of this node, e.g. acme.example")
    add_data_dir(init, help="where to create the node (default: $AGENTNET_DATA_DIR, else the current directory)")
    init.add_argument("--display-name", help="company name shown to partners (default: the server name)")
    init.add_argument("--database-url", help="postgresql://... (default: SQLite in the data dir)")
    init.add_argument("--admin-port", type=int, default=8701)
    init.add_argument("--client-port", type=int, default=8702)
    init.add_argument("--federation-port", type=int, default=8443)
    init.add_argument("--public-endpoint", help="https URL peers use to reach this node (default https://NAME)")
    init.add_argument("--tls-ca-file", help="the certificates (or CAs) of the partners this node trusts, one PEM file "
                                            "(default: the system's public CAs); it may be made later, and is read "
                                            "again when it changes")
    init.add_argument("--no-save-token", action="store_true",
                      help="print the admin token only, without saving it to DATA_DIR/admin.token")

    run = command("run", "serve the node's listeners until interrupted",
                  description="Serve the admin, client and federation listeners of the node in the data dir "
                              "until SIGINT or SIGTERM; the schema is brought up to date first unless "
                              "auto_migrate = false. Exit 1 if a port is taken or the database is unreachable.")
    add_data_dir(run)

    migrate = command("migrate", "bring the database schema up to date")
    add_data_dir(migrate)

    token = command("admin-token", "revoke every admin token and make a new one",
                    description="Revoke every admin token, make a new one, save it to DATA_DIR/admin.token "
                                "(0600) and print it.")
    add_data_dir(token)

    keys = command("keys", "the node's signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_sub.add_parser("rotate", help="switch to a new signing key, announced with the old one",
                                 description="Switch to a new signing key, announced to peers with the old one.")
    add_data_dir(rotate)
    # More commands, each module adding its parsers with `set_defaults(handler=<async fn>)`.
    _register_demo(sub)
    for module in (admin_commands, node_commands, export_commands):
        module.register(sub)
    return parser


def _register_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the acme-rollout story on two local nodes and check privacy",
                          description="Start Acme and Globex (and Initech with --nodes 3) as separate "
                                      "node processes on loopback, run the acme-rollout story through the "
                                      "public APIs, show each node's copy of the shared thread and prove "
                                      "that no private item crossed. Exit 0 when every check passes.")
    demo.add_argument("--keep", type=Path, metavar="DIR",
                      help="keep the nodes' data in DIR (new or empty) to explore afterwards")
    demo.add_argument("--nodes", type=int, choices=(2, 3), default=2, help="2: Acme and Globex; 3: and Initech")
    demo.add_argument("--quiet", action="store_true", help="print only the results, not the progress")
    demo.set_defaults(handler=_demo)


async def _demo(args: argparse.Namespace) -> int:
    from node.ops.demo import run_demo

    return await run_demo(args)


async def _init(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from federation.errors import InvalidIdentifier
    from federation.identifiers import validate_server_name
    from federation.keys import SigningKey
    from node.basics.clock import SystemClock
    from node.basics.config import CONFIG_FILE, load_settings, write_config
    from node.workspace.bootstrap import bootstrap_company
    from storage.storage import Storage

    try:
        server_name = validate_server_name(args.server_name)
    except InvalidIdentifier as e:
        raise CommandError(f"--server-name: {e}") from None
    data_dir: Path = args.data_dir
    if (data_dir / CONFIG_FILE).exists():
        raise CommandError(f"{data_dir / CONFIG_FILE} already exists: this data dir holds a node")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    values: dict = {"server_name": server_name, "display_name": args.display_name or server_name,
                    "admin_port": args.admin_port, "client_port": args.client_port,
                    "federation_port": args.federation_port}
    for option in ("database_url", "public_endpoint"):
        if getattr(args, option):
            values[option] = getattr(args, option)
    if args.tls_ca_file:  # a path on the command line is from here, not from the data dir
        values["tls_ca_file"] = str(Path(args.tls_ca_file).expanduser().resolve())
    config_path = write_config(data_dir, values)
    try:
        settings = load_settings(data_dir)
        key = SigningKey.generate()
        key.save(settings.signing_key_path)
        made_tls = not settings.tls_cert_path.exists() and not settings.tls_key_path.exists()
        if made_tls:
            from node.ops.tls_ca import write_self_signed  # cryptography: only commands that make certificates load it

            tls_fingerprint = write_self_signed(settings.tls_cert_path, settings.tls_key_path, server_name,
                                                now=datetime.now(UTC))
        storage = await Storage.open(settings.resolved_database_url, auto_migrate=True)
        try:
            token = await bootstrap_company(
                storage, server_name=server_name, display_name=settings.display_name,
                now=SystemClock().now_ms(),
            )
        finally:
            await storage.close()
    except BaseException:
        # Leave no half-made node behind: a retry of `init` must start clean.
        config_path.unlink(missing_ok=True)
        for leftover in ("signing.key", "tls.crt", "tls.key"):
            (data_dir / leftover).unlink(missing_ok=True)
        raise
    print(f"Node {server_name} created in {data_dir}")
    print(f"Signing key {key.key_id}, fingerprint {key.verify_key.fingerprint}")
    if made_tls:
        print(f"Self-signed TLS certificate {settings.tls_cert_path}, SHA-256 {tls_fingerprint}")
        print("  (give peers this certificate for their tls_ca_file, or replace it with one from your CA)")
    print(f"Admin listener http://{settings.admin_host}:{settings.admin_port}, "
          f"client listener http://{settings.client_host}:{settings.client_port}, "
          f"federation listener https://{settings.federation_host}:{settings.federation_port} "
          f"(peers reach it at {settings.resolved_public_endpoint})")
    if settings.tls_ca_path is not None and not settings.tls_ca_path.exists():
        print(f"Peers are trusted from {settings.tls_ca_path}, which does not exist yet: put your partners' "
              "certificates (or their CA's) there before `agentnet run`; the node reads it again when it changes")
    if args.no_save_token:
        print("Admin token (shown once; store it now):")
    else:
        print(f"Admin token (saved to {save_admin_token(data_dir, token)}, mode 0600):")
    print(token)


async def _run(args: argparse.Namespace) -> None:
    from node.basics.config import load_settings
    from node.basics.log_setup import configure_logging
    from node.main.runner import serve

    settings = load_settings(args.data_dir)
    configure_logging(settings.log_level, as_json=settings.log_json)
    await serve(settings)


async def _migrate(args: argparse.Namespace) -> None:
    from node.basics.config import load_settings
    from storage.storage import Storage

    settings = load_settings(args.data_dir)
    storage = await Storage.open(settings.resolved_database_url, auto_migrate=True)
    await storage.close()
    print("database schema is up to date")


async def _admin_token(args: argparse.Namespace) -> None:
    from node.basics.clock import SystemClock
    from node.basics.config import load_settings
    from node.workspace.bootstrap import reset_admin_token
    from storage.storage import Storage

    settings = load_settings(args.data_dir)
    storage = await Storage.open(settings.resolved_database_url, auto_migrate=settings.auto_migrate)
    try:
        token = await reset_admin_token(storage, now=SystemClock().now_ms())
    finally:
        await storage.close()
    print(f"Every earlier admin token is revoked. New admin token (saved to "
          f"{save_admin_token(args.data_dir, token)}, mode 0600):")
    print(token)


async def _keys(args: argparse.Namespace) -> None:
    from node.basics.clock import SystemClock
    from node.basics.config import load_settings
    from node.federation.key_publishing import rotate_node_key
    from storage.storage import Storage

    settings = load_settings(args.data_dir)
    storage = await Storage.open(settings.resolved_database_url, auto_migrate=settings.auto_migrate)
    try:
        old, new = await rotate_node_key(storage, settings.signing_key_path, server=settings.server_name,
                                         now=SystemClock().now_ms())
    finally:
        await storage.close()
    print(f"Rotated {old.key_id} -> {new.key_id} (fingerprint {new.verify_key.fingerprint}).")
    print("Peers learn the new key from the rotation notice signed by the old one; events signed with")
    print("the old key keep verifying. Restart the node to sign with the new key.")


_COMMANDS = {"init": _init, "run": _run, "migrate": _migrate, "admin-token": _admin_token, "keys": _keys}


# Everything `agentnet` creates (settings, database and the -wal and -shm files SQLite makes
# itself, keys, logs, backups, certificates) is for its own user only: files 0600, directories
# 0700, whichever code creates them. Writers of secrets also pass 0600 themselves.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    previous = os.umask(PRIVATE_UMASK)
    try:
        return _main(argv, started)
    finally:
        os.umask(previous)  # for callers in the same process (tests)


def _main(argv: list[str] | None, started: float) -> int:
    parser = _parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asking for completions (docs/cli.md): answer and exit
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    args.started = started  # a command that reports its time counts its own start-up too
    if "data_dir" in vars(args) and args.data_dir is None:
        args.data_dir = data_dir(args)  # one convention for every command
    import asyncio  # not before a command runs: `--help` and a usage error need none of it

    try:
        handler = getattr(args, "handler", None) or _COMMANDS[args.command]
        result = asyncio.run(handler(args))
        if isinstance(result, int):  # a command with its own exit code
            return result
    except CommandError as e:
        print(f"agentnet {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except CannotListen as e:
        print(f"agentnet {args.command}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except (ConfigError, KeyFileError) as e:
        print(f"agentnet {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except StorageConfigError as e:
        print(f"agentnet {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except StorageError as e:
        print(f"agentnet {args.command}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
