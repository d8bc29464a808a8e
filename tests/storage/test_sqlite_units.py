"""Units of work on a SQLite file run on a sync engine (`storage.sqlite_units`): they must
never make the loop wait for a connection, must roll back what fails, and a database with no
file (in memory) must still work through the async engine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from storage.sqlite_units import SyncConnection
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


async def test_an_in_memory_database_keeps_the_async_engine():
    storage = await Storage.open("sqlite:///:memory:")
    try:
        async with storage.transaction() as tx:
            assert not isinstance(tx.principals._conn, SyncConnection)
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
        from storage.engine import create_engine, create_unit_engine
        engine = create_engine("postgresql://nobody@127.0.0.1:1/none")
        assert create_unit_engine(engine) is None
        print(",".join(m for m in ("sqlite3", "sqlalchemy.dialects.sqlite") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
