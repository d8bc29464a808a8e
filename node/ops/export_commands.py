"""`agentnet verify FILE`: check a network export offline, and write a thread's transcript.

It needs no node: no data dir, no token, no network. It reads the file (bounded: no more than
`federation.export_file.MAX_EXPORT_BYTES`), checks it with the protocol core alone
(`federation.export_replay`) and prints what it found: the network, its host, the head, and
each company with its keys' fingerprints, to compare with the company out of band or to pin
with `--pin SERVER=FINGERPRINT`. `agentnet export` (in `node.ops.admin_commands`) writes the
file with `save_export` below.

Exit codes: 0 everything verified; 1 it did not (the first broken seq and why on stderr);
2 usage: bad arguments, a file that cannot be read, or that is not an export.

`agentnet import FILE` lives here too, the other command that reads an export file: it writes a
private export into a fresh node's database (`node.ops.private_import`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.ops import output as out
from node.ops.arguments import add_data_dir, read_at_most

if TYPE_CHECKING:
    from federation.export_report import ExportReport

# The protocol core (pydantic, nacl) is imported by the command when it runs: `--help` needs none of it.

__all__ = ["register", "save_export", "write_private"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    pass


def write_private(path: Path, data: bytes, *, force: bool) -> None:
    """Write `data` to `path` with mode 0600; an existing file is an error unless `force`,
    and then it is replaced whole (never left half-written)."""
    if not force:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # FileExistsError if it is there
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def save_export(path: Path, document: dict[str, Any], *, force: bool) -> int:
    """Write an export as `agentnet export` got it: compact JSON, mode 0600. Returns its size."""
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    write_private(path, data, force=force)
    return len(data)


def register(sub: argparse._SubParsersAction) -> None:
    verify = sub.add_parser(
        "verify", help="check a network export offline: signatures, hash chain, rules; no node needed",
        description="Check a file written by `agentnet export` on any machine, with no node, data dir, token or "
                    "network: every origin and host signature, the hash chain from seq 1 to the head, and the "
                    "rules. Prints each company with its keys' fingerprints: compare them with the companies "
                    "out of band, or require them with --pin. Exit 0 when everything verifies, 1 when it does "
                    "not (naming the first broken seq), 2 for bad usage or a file that is not an export.",
        epilog="exit codes:\n  0  verified\n  1  does not verify (first broken seq on stderr)\n"
               "  2  wrong usage, unreadable file, not an export", formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("file", type=Path, help="the export file")
    verify.add_argument("--json", action="store_true", help="print the findings as JSON")
    verify.add_argument("--pin", action="append", default=[], metavar="SERVER=FINGERPRINT",
                        help="require every signature of SERVER to come from this key (or one its own key document "
                             "leads to from it); repeat, also for several keys of one server")
    verify.add_argument("--show", action="store_true", help="also print who said what, thread by thread")
    verify.add_argument("--transcript", metavar="THREAD", help="write a readable transcript of THREAD (verified "
                                                               "events only)")
    verify.add_argument("--format", choices=("md", "html"), default="md", help="transcript format (default md)")
    verify.add_argument("-o", "--output", type=Path, metavar="OUT", help="write the transcript to OUT (mode 0600; "
                                                                         "default: stdout)")
    verify.add_argument("--force", action="store_true", help="replace OUT if it exists")
    verify.set_defaults(handler=_verify)

    load = sub.add_parser(
        "import", help="restore a private export (`agentnet export --private`) into a fresh, stopped node",
        description="Write the company's private side from FILE (written by `agentnet export --private`) into the "
                    "database of the node in the data dir, which must be stopped and fresh: just made by "
                    "`agentnet init`, or with an empty database. The whole file is checked first; then "
                    "everything is written in one transaction, or nothing is.",
        epilog="exit codes:\n  0  imported\n  1  the database is not fresh, or cannot be reached (nothing "
               "written)\n  2  wrong usage, bad settings, or a file that is not a valid private export",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("file", type=Path, help="the file `agentnet export --private` wrote")
    add_data_dir(load)
    load.set_defaults(handler=_import)


async def _verify(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except _Usage as e:
        print(f"agentnet verify: {e}", file=sys.stderr)
        return EXIT_USAGE


async def _import(args: argparse.Namespace) -> int:
    from node.basics.clock import SystemClock
    from node.basics.config import load_settings
    from node.basics.errors import ConfigError
    from node.ops.private_import import NotFresh, import_private, read_private_file
    from storage.errors import StorageConfigError, StorageError

    try:
        document, digest = read_private_file(args.file)
        settings = load_settings(args.data_dir)
        done = await import_private(document, settings, file_sha256=digest, now=SystemClock().now_ms())
    except (ConfigError, StorageConfigError) as e:
        print(f"agentnet import: {out.clean(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (NotFresh, StorageError) as e:
        print(f"agentnet import: {out.clean(e)}; nothing was written", file=sys.stderr)
        return EXIT_FAILED
    counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in done.counts.items() if n)
    seq, head = done.audit_head
    print(f"Imported {done.server_name}'s private side into {settings.data_dir}: {counts or 'nothing'}.")
    print(f"The audit log holds the file's entries 1 to {seq} (head {seq}:{head}) and this import after them"
          + (f"; it replaced this node's own {done.replaced} entries." if done.replaced else "."))
    print("Start the node with `agentnet run`; `agentnet audit-verify --anchor "
          f"{seq}:{head}` checks the chain against the head.")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from federation.errors import InvalidExport
    from federation.export_file import MAX_EXPORT_BYTES, parse_export
    from federation.export_replay import verify_export

    pins = _pins(args.pin)
    data = _read(args.file, MAX_EXPORT_BYTES)
    try:
        report = verify_export(parse_export(data), pins=pins)
    except InvalidExport as e:
        raise _Usage(f"{args.file}: {out.clean(e)}") from None
    digest = hashlib.sha256(data).hexdigest()
    to = sys.stderr if args.transcript and args.output is None else sys.stdout  # stdout: the transcript
    if args.json:
        print(json.dumps({"ok": report.ok, "file_sha256": digest, **asdict(report)}, indent=2, ensure_ascii=False),
              file=to)
    else:
        print(summary(report, digest), file=to)
    if not report.ok:
        failure = report.failure
        assert failure is not None
        where = f"at seq {failure.seq}" if failure.seq is not None else "before its first event"
        print(f"agentnet verify: {args.file} does not verify {where}: {failure.stage}: {out.clean(failure.reason)}",
              file=sys.stderr)
        return EXIT_FAILED
    if args.show and not args.json:
        print("\n" + said_log(report), file=to)
    if args.transcript:
        _transcript(args, report, digest)
    return EXIT_OK


def _pins(given: list[str]) -> dict[str, list[str]]:
    from federation.export_file import normalize_fingerprint
    from federation.identifiers import validate_server_name

    pins: dict[str, list[str]] = {}
    for pin in given:
        server, sep, fingerprint = pin.partition("=")
        try:
            if not sep:
                raise ValueError("say SERVER=FINGERPRINT")
            pins.setdefault(validate_server_name(server.strip()), []).append(normalize_fingerprint(fingerprint))
        except ValueError as e:
            raise _Usage(f"--pin {out.clean(pin)}: {e}") from None
    return pins


def _read(path: Path, limit: int) -> bytes:
    try:
        data = read_at_most(path, limit)
    except OSError as e:
        raise _Usage(f"cannot read {path}: {e.strerror or e}") from None
    if data is None:
        raise _Usage(f"{path} is over {limit} bytes: too large to be an export")
    return data


def _transcript(args: argparse.Namespace, report: ExportReport, digest: str) -> None:
    from node.ops import transcript

    if args.transcript not in {t.name for t in report.threads}:
        names = ", ".join(t.name for t in report.threads) or "none"
        raise _Usage(f"no thread {out.clean(args.transcript)} in this export (threads: {names})")
    render = transcript.html if args.format == "html" else transcript.markdown
    text = render(report, args.transcript, file_sha256=digest)
    if args.output is None:
        sys.stdout.write(text)
        return
    try:
        write_private(args.output, text.encode("utf-8"), force=args.force)
    except FileExistsError:
        raise _Usage(f"{args.output} exists: pass --force to replace it") from None
    except OSError as e:
        raise _Usage(f"cannot write {args.output}: {e.strerror or e}") from None
    print(f"Wrote the transcript of {args.transcript} ({args.format}) to {args.output}")


def summary(report: ExportReport, digest: str) -> str:
    """What a reader checks first: the verdict, then each company and its keys' fingerprints."""
    head = out.key_values([
        ("network", f"{report.network} ({report.title})"), ("host", report.host),
        ("exported by", f"{report.exported_by} at {out.when(report.exported_at)}"),
        ("head", f"seq {report.head_seq}"), ("file SHA-256", digest)])
    failure = report.failure
    if failure is None:
        verdict = (f"VERIFIED: events 1 to {report.verified_seq}: every origin and host signature, the hash chain "
                   f"and the rules.")
        if report.stubs:
            verdict += (f"\n{report.stubs} of them are messages this copy holds as their place only (history hidden "
                        "from this company, or bodies removed by retention): their place in the chain and the "
                        "host's signature verified; what they said is not in the file.")
    else:
        where = f"seq {failure.seq}" if failure.seq is not None else "the pins"
        event = f" ({report.failed_event})" if report.failed_event else ""
        verdict = (f"NOT VERIFIED at {where}{event}: {failure.stage}: {failure.reason}\n"
                   f"Events 1 to {report.verified_seq} verified; nothing from seq {report.verified_seq + 1} on is.")
    rows = []
    for c in report.companies:
        company = {"server": c.server + (" (pinned)" if c.pinned else ""), "role": c.role, "events": c.events,
                   "messages": c.messages}
        for i, k in enumerate(c.keys):  # the company once, then one row per key
            state = "revoked" if k.revoked else f"until {out.when(k.usable_until)}" if k.usable_until else "current"
            rows.append({**(company if i == 0 else {}), "key": k.key_id, "fingerprint": k.fingerprint,
                         "signed": k.signed, "state": state, "from": k.source})
    C = out.Column
    blank = [C(header, _or_blank(field)) for header, field in (
        ("COMPANY", "server"), ("ROLE", "role"), ("EVENTS", "events"), ("MESSAGES", "messages"))]
    companies = out.table(rows, [*blank, C("KEY", "key"), C("FINGERPRINT", "fingerprint"),
                                 C("SIGNED", "signed"), C("STATE", "state"), C("FROM", "from")],
                          empty="(no keys in the file)")
    verdict = "\n".join(out.clean(line) for line in verdict.split("\n"))
    return (f"{head}\n\n{verdict}\n\nCompanies (compare each fingerprint with its company out of band, "
            f"or pass --pin SERVER=FINGERPRINT):\n{companies}")


def _or_blank(field: str) -> Callable[[dict], Any]:
    return lambda row: row.get(field, "")


def said_log(report: ExportReport) -> str:
    """Who said what, thread by thread, for a terminal."""
    parts = []
    for thread in report.threads:
        lines = [f"Thread {out.clean(thread.name)}: {out.clean(thread.title)}"]
        for said in (s for s in report.said if s.thread == thread.name):
            what = {"posted": "", "edited": f" (edits {said.refers_to})", "deleted": f" (deletes {said.refers_to})"}
            name = report.names.get(said.sender)
            who = f"{name} ({said.sender})" if name else said.sender
            lines.append(f"  #{said.seq}  {out.when(said.host_ts)}  {out.clean(who)}{out.clean(what[said.kind])}")
            for line in (said.body or "").splitlines():
                lines.append("      " + out.clean(line))
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "(no shared threads)"
