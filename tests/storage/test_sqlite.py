"""SQLite runs one way (`storage.sqlite`): SQLAlchemy's public sync engine, on the loop's
thread, for units of work, migrations and tests alike, a database in memory included. It must
never make the loop wait for a connection, must roll back what fails, and must not lean on
SQLAlchemy's private async adapters."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.sqlite import SqliteEngine, SyncConnection
from storage.storage import Storage

NOW = 1_700_000_000_000


@pytest.fixture
async def storage(tmp_path):
    storage = await Storage.open(f"sqlite:///{tmp_path / 'units.db'}")
    yield storage
    await storage.close()


async def test_a_file_database_runs_units_of_work_on_the_sync_engine(storage):
    async with storage.read_transaction() as tx:
        assert isinstance(tx.principals._conn, SyncConnection)


async def test_many_open_units_of_work_never_wait_for_a_connection(storage):
    # More read units open at once than the pool keeps (5): a pool that made the sixth wait
    # would block the loop's thread, and none of them could finish.
    opened = asyncio.Event()
    count = 0

    async def hold() -> int:
        nonlocal count
        async with storage.read_transaction() as tx:
            count += 1
            if count == 25:
                opened.set()
            await opened.wait()
            return len(await tx.principals.all())

    assert await asyncio.wait_for(asyncio.gather(*[hold() for _ in range(25)]), 10) == [0] * 25


async def test_a_failed_unit_of_work_changes_nothing(storage):
    with pytest.raises(RuntimeError):
        async with storage.transaction() as tx:
            await tx.principals.create(kind="agent", handle="ops", display_name="Ops", profile="", now=NOW)
            raise RuntimeError("after the write")
    async with storage.read_transaction() as tx:
        assert await tx.principals.all() == []
    async with storage.transaction() as tx:
        await tx.principals.create(kind="agent", handle="ops", display_name="Ops", profile="", now=NOW)
    async with storage.read_transaction() as tx:
        assert [p.handle for p in await tx.principals.all()] == ["ops"]


async def test_an_in_memory_database_runs_the_same_way_on_its_one_connection():
    storage = await Storage.open("sqlite:///:memory:")
    try:
        async with storage.transaction() as tx:
            assert isinstance(tx.principals._conn, SyncConnection)
            await tx.principals.create(kind="agent", handle="ops", display_name="Ops", profile="", now=NOW)
        async with storage.read_transaction() as tx:
            assert [p.handle for p in await tx.principals.all()] == ["ops"]
    finally:
        await storage.close()


def test_a_postgresql_node_never_loads_sqlite():
    # sqlite3 and SQLAlchemy's SQLite dialect are some 1.5 MB a PostgreSQL node has no use for.
    code = textwrap.dedent("""
        import sys
        import node.main.assembly
        from storage.engine import create_engine
        engine = create_engine("postgresql://nobody@127.0.0.1:1/none")
        assert engine.dialect.name == "postgresql"
        print(",".join(m for m in ("sqlite3", "sqlalchemy.dialects.sqlite") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""


async def test_sqlite_runs_on_public_api_only(tmp_path):
    """Every SQLite connection is a plain sqlite3 connection from the pysqlite driver, and no
    storage module names SQLAlchemy's private async adapters or aiosqlite."""
    storage = await Storage.open(f"sqlite:///{tmp_path / 'public.db'}")
    try:
        assert isinstance(storage.engine, SqliteEngine)
        assert storage.engine.dialect.driver == "pysqlite"
        async with storage.transaction() as tx:
            conn = tx.principals._conn
            assert isinstance(conn, SyncConnection)
            assert type(conn.sync_connection.connection.dbapi_connection) is sqlite3.Connection
    finally:
        await storage.close()
    storage_dir = Path(__file__).resolve().parents[2] / "storage"
    importing = re.compile(r"^\s*(from|import)\s.*(aiosqlite|AsyncAdapt)", re.M)
    named = [p.name for p in storage_dir.rglob("*.py") if importing.search(p.read_text())]
    assert named == []


async def test_the_engine_offers_what_migrations_and_tests_call(tmp_path):
    storage = await Storage.open(f"sqlite:///{tmp_path / 'calls.db'}")
    try:
        assert isinstance(storage.engine, SqliteEngine) and storage.engine.dialect.name == "sqlite"
        async with storage.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE scratch (x INTEGER)"))
        async with storage.engine.connect() as conn:
            assert await conn.run_sync(lambda c: c.exec_driver_sql("SELECT count(*) FROM scratch").scalar()) == 0
    finally:
        await storage.close()
