"""Back up a node and restore it: `agentnet backup` and `agentnet restore`.

What must survive is the database and the node's identity. Every event, every projection and
every pending delivery (the outbox) lives in the database, so a *consistent* snapshot of it
holds all of them at one instant, with nothing half-written:

* SQLite: the online backup API, reading through one read transaction held open for the
  whole copy. In WAL mode writers carry on meanwhile, and since the snapshot never moves the
  copy never restarts, however busy the node is.
* PostgreSQL: `pg_dump --format=custom`, which reads everything in one repeatable-read
  transaction; `pg_restore --single-transaction` puts it back all or nothing.

The node's identity is the data dir: its settings, its signing key (mode 0600) and its TLS
files. They go into the same archive, a tar.gz created 0600 because it holds the key.

Restore never overwrites: the data dir must be empty or absent, the SQLite file must not
exist, and a PostgreSQL target must hold no tables. A failed restore removes what it wrote.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TextIO

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from node.basics.config import CONFIG_FILE, NodeSettings, load_settings, write_config
from node.basics.errors import ConfigError, NodeError

__all__ = ["BackupFailed", "BackupResult", "Progress", "RestoreResult", "backup", "restore", "terminal_progress"]

FORMAT, VERSION = "agentnet-backup", 1
MANIFEST = "manifest.json"
SQLITE_MEMBER, PG_MEMBER = "database/node.db", "database/node.pgdump"

# Pages per backup step: about 1% of a 400 MB database at SQLite's default 4 KiB pages, so the
# progress display moves smoothly without a step costing noticeably more than the copy.
SQLITE_STEP_PAGES = 1024

# How often the PostgreSQL dump's size is shown while pg_dump runs.
DUMP_POLL_S = 0.25

# (what, done, total): total is 0 when unknown (a dump's size is only known at its end).
Progress = Callable[[str, int, int], None]


class BackupFailed(NodeError):
    """The backup or restore could not be done (the database unreachable, a tool failing)."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    server_name: str
    backend: str
    files: tuple[str, ...]
    not_included: tuple[Path, ...]  # files the settings name that lie outside the data dir


@dataclass(frozen=True, slots=True)
class RestoreResult:
    data_dir: Path
    server_name: str
    backend: str
    database_url: str


def terminal_progress(stream: TextIO) -> Progress | None:
    """A one-line progress display on `stream`, or None when it is not a terminal."""
    if not stream.isatty():
        return None

    def show(what: str, done: int, total: int) -> None:
        if total:
            line = f"{what}: {100 * done // total:3d}% ({done}/{total} pages)"
        else:
            line = f"{what}: {done / 2**20:.1f} MiB"
        stream.write(f"\r{line}\033[K")
        if total and done >= total:
            stream.write("\n")
        stream.flush()

    return show


# --- backup ----------------------------------------------------------------------------------


async def backup(settings: NodeSettings, output: Path, *, now: datetime,
                 progress: Progress | None = None) -> BackupResult:
    url = settings.resolved_database_url
    backend = _backend(url)
    if output.exists():
        raise ConfigError(f"{output} already exists; refusing to overwrite it")
    if not output.parent.is_dir():
        raise ConfigError(f"{output.parent} is not a directory")
    partial = output.with_name(f".{output.name}.partial")
    skip = {output.resolve(), partial.resolve()} | _sqlite_files(url)
    files = _data_files(settings.data_dir, skip)
    not_included = tuple(
        p for p in (settings.signing_key_path, settings.tls_cert_path, settings.tls_key_path, settings.tls_ca_path)
        if p is not None and not p.resolve().is_relative_to(settings.data_dir.resolve())
    )
    with tempfile.TemporaryDirectory(prefix="agentnet-backup-") as work:
        if backend == "sqlite":
            dump, member = Path(work) / "node.db", SQLITE_MEMBER
            await asyncio.to_thread(_sqlite_snapshot, _sqlite_path(url), dump, progress)
        else:
            dump, member = Path(work) / "node.pgdump", PG_MEMBER
            await _pg_dump(url, dump, Path(work), progress)
        manifest = {"format": FORMAT, "version": VERSION, "server_name": settings.server_name,
                    "backend": backend, "database": member, "created_at": now.isoformat(),
                    "files": [rel for rel, _ in files]}
        included = [rel for rel, _ in files]
        try:
            _write_archive(partial, manifest, files, (member, dump))
            os.replace(partial, output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return BackupResult(output, settings.server_name, backend, tuple(included), not_included)


def _sqlite_snapshot(source: Path, target: Path, progress: Progress | None) -> None:
    if not source.is_file():
        raise BackupFailed(f"the SQLite database {source} does not exist")
    try:
        src = sqlite3.connect(source, isolation_level=None, timeout=30)
    except sqlite3.Error as e:
        raise BackupFailed(f"cannot open the SQLite database {source}: {e}") from None
    try:
        # One read transaction for the whole copy: every step reads the same snapshot.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(target)
        try:
            def step(_status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress("database", total - remaining, total)

            src.backup(dst, pages=SQLITE_STEP_PAGES, progress=step)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the archive
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.Error as e:
        raise BackupFailed(f"cannot copy the SQLite database {source}: {e}") from None
    finally:
        src.close()


async def _pg_dump(url: str, target: Path, work: Path, progress: Progress | None) -> None:
    libpq_url, env = _libpq(url)
    log = work / "pg_dump.err"
    with open(log, "wb") as errors:
        proc = await _start_tool("pg_dump", ["--format=custom", f"--file={target}", f"--dbname={libpq_url}"],
                                 env, errors)
        while True:
            try:
                await asyncio.wait_for(proc.wait(), DUMP_POLL_S)
                break
            except TimeoutError:
                if progress is not None and target.exists():
                    progress("database", target.stat().st_size, 0)
    if proc.returncode != 0:
        raise BackupFailed(f"pg_dump failed (exit {proc.returncode}): {_last_line(log)}")
    if progress is not None:
        progress("database", target.stat().st_size, 0)


def _data_files(data_dir: Path, skip: set[Path]) -> list[tuple[str, Path]]:
    """Every regular file under the data dir except the database's own files."""
    found = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.resolve() not in skip:
            found.append((path.relative_to(data_dir).as_posix(), path))
    return found


def _write_archive(path: Path, manifest: dict, files: list[tuple[str, Path]], database: tuple[str, Path]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            body = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(body))
            for rel, source in files:
                tar.add(source, arcname=f"data/{rel}", recursive=False, filter=_anonymous)
            tar.add(database[1], arcname=database[0], recursive=False, filter=_anonymous)
        raw.flush()
        os.fsync(raw.fileno())


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# --- restore ---------------------------------------------------------------------------------


async def restore(archive: Path, data_dir: Path, *, database_url: str | None = None) -> RestoreResult:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise ConfigError(f"{data_dir} is not an empty directory; restore only into a new data dir")
    if database_url is not None:
        _backend(database_url)  # refuse a bad URL before touching anything
    made_dir = not data_dir.exists()
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except (OSError, tarfile.TarError) as e:
        raise ConfigError(f"cannot read {archive} as a backup: {e}") from None
    try:
        with tar, tempfile.TemporaryDirectory(prefix="agentnet-restore-") as work:
            manifest = _read_manifest(tar, archive)
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                return await _restore_into(tar, manifest, data_dir, database_url, Path(work))
            except BaseException:
                _remove_contents(data_dir, remove_dir=made_dir)
                raise
    except tarfile.TarError as e:
        raise ConfigError(f"{archive} is damaged: {e}") from None


async def _restore_into(tar: tarfile.TarFile, manifest: dict, data_dir: Path, database_url: str | None,
                        work: Path) -> RestoreResult:
    for rel in manifest["files"]:
        _extract(tar, f"data/{rel}", data_dir / rel)
    dump = work / PurePosixPath(manifest["database"]).name
    _extract(tar, manifest["database"], dump)
    _retarget_database(data_dir, manifest["backend"], database_url)
    settings = load_settings(data_dir)
    url = settings.resolved_database_url
    if _backend(url) != manifest["backend"]:
        raise ConfigError(f"the backup holds a {manifest['backend']} database but the target is {url.split(':')[0]}")
    if settings.server_name != manifest["server_name"]:
        raise ConfigError(f"the restored settings name {settings.server_name!r}, the backup {manifest['server_name']!r}")
    if manifest["backend"] == "sqlite":
        target = _sqlite_path(url)
        clash = [p for p in _sqlite_files(url) if p.exists()]
        if clash:
            raise ConfigError(f"{clash[0]} already exists; refusing to overwrite it")
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(dump, staged)
        os.chmod(staged, 0o600)
        os.replace(staged, target)
    else:
        await _pg_restore(url, dump, work)
    return RestoreResult(data_dir, settings.server_name, manifest["backend"], url)


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> dict:
    try:
        member = tar.getmember(MANIFEST)
        manifest = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]  # None: AttributeError below
    except (KeyError, AttributeError, ValueError):
        raise ConfigError(f"{archive} is not an agentnet backup (no readable {MANIFEST})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{archive} is not an agentnet backup")
    if manifest.get("version") != VERSION:
        raise ConfigError(f"{archive} is backup format version {manifest.get('version')}; this agentnet reads {VERSION}")
    if manifest.get("backend") not in ("sqlite", "postgresql") or \
            manifest.get("database") != {"sqlite": SQLITE_MEMBER, "postgresql": PG_MEMBER}[manifest["backend"]]:
        raise ConfigError(f"{archive} has a manifest this agentnet does not understand")
    for rel in manifest.get("files", []):
        parts = PurePosixPath(rel).parts
        if not isinstance(rel, str) or PurePosixPath(rel).is_absolute() or ".." in parts or not parts:
            raise ConfigError(f"{archive} names an unsafe path {rel!r}; refusing to restore it")
    if CONFIG_FILE not in manifest.get("files", []):
        raise ConfigError(f"{archive} holds no {CONFIG_FILE}")
    return manifest


def _extract(tar: tarfile.TarFile, name: str, target: Path) -> None:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ConfigError(f"the backup lacks {name}, which its manifest lists") from None
    if not member.isreg():
        raise ConfigError(f"{name} in the backup is not a regular file")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, member.mode & 0o700 or 0o600)
    with os.fdopen(fd, "wb") as out:
        source = tar.extractfile(member)
        if source is None:
            raise BackupFailed(f"{member.name} in the archive is not a regular file")
        shutil.copyfileobj(source, out)


def _retarget_database(data_dir: Path, backend: str, database_url: str | None) -> None:
    """Point the restored settings at the target database: `--database-url` if given; for
    SQLite otherwise the new data dir's `node.db`, never the old node's file."""
    path = data_dir / CONFIG_FILE
    values = tomllib.loads(path.read_text("utf-8"))
    if database_url is not None:
        values["database_url"] = database_url
    elif backend == "sqlite":
        values.pop("database_url", None)
    else:
        return
    write_config(data_dir, values)


async def _pg_restore(url: str, dump: Path, work: Path) -> None:
    libpq_url, env = _libpq(url)
    if tables := await _pg_relations(url):
        raise ConfigError(f"the target database is not empty ({tables} tables and other relations); "
                          "restore into a new, empty database")
    log = work / "pg_restore.err"
    with open(log, "wb") as errors:
        proc = await _start_tool("pg_restore", ["--no-owner", "--no-privileges", "--exit-on-error",
                                                "--single-transaction", f"--dbname={libpq_url}", str(dump)],
                                 env, errors)
        await proc.wait()
    if proc.returncode != 0:
        raise BackupFailed(f"pg_restore failed (exit {proc.returncode}): {_last_line(log)}")


async def _pg_relations(url: str) -> int:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        raise BackupFailed(f"cannot reach the target database: {e}") from None
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'S')")
    finally:
        await conn.close()


# --- helpers ---------------------------------------------------------------------------------


def _backend(url: str) -> str:
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as e:
        raise ConfigError(f"database URL is not valid: {e}") from None
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"database URL must be sqlite or postgresql, not {backend!r}")
    return backend


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _sqlite_files(url: str) -> set[Path]:
    if _backend(url) != "sqlite":
        return set()
    path = _sqlite_path(url).resolve()
    return {path} | {path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")}


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL for pg_dump/pg_restore, with the password moved into the environment so it
    never shows in the process list."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    clean = parsed.set(drivername="postgresql", password=None)
    return clean.render_as_string(hide_password=False), env


async def _start_tool(tool: str, args: list[str], env: dict[str, str], errors) -> asyncio.subprocess.Process:
    path = shutil.which(tool)
    if path is None:
        raise BackupFailed(f"{tool} is not on PATH; install the PostgreSQL client tools "
                           "(Debian: apt-get install postgresql-client) matching the server's major version")
    return await asyncio.create_subprocess_exec(path, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=errors)


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text("utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _remove_contents(data_dir: Path, *, remove_dir: bool) -> None:
    if remove_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for child in data_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
