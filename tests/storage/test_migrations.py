import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from storage.engine import create_engine
from storage.errors import StorageConfigError
from storage.migrations_runner import HEAD_REVISION, current_revision, ensure_schema, head_revision
from storage.network.tables import NETWORK_METADATA
from storage.private.tables import PRIVATE_METADATA
from storage.search import is_search_object


async def test_fresh_database_refuses_without_auto_migrate(database_url):
    engine = create_engine(database_url)
    try:
        with pytest.raises(StorageConfigError, match="agentnet migrate"):
            await ensure_schema(engine, auto_migrate=False)
        assert await current_revision(engine) is None
    finally:
        await engine.dispose()


async def test_migrations_build_exactly_the_declared_schema(database_url):
    engine = create_engine(database_url)
    try:
        await ensure_schema(engine, auto_migrate=True)
        assert await current_revision(engine) == head_revision()

        def diff(conn):
            context = MigrationContext.configure(
                conn, opts={"include_object": lambda o, name, *_: not is_search_object(name)}
            )
            return compare_metadata(context, [PRIVATE_METADATA, NETWORK_METADATA])

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == []
        # Running again on an up-to-date database is a no-op.
        await ensure_schema(engine, auto_migrate=False)
    finally:
        await engine.dispose()


async def test_unknown_revision_is_refused(database_url):
    engine = create_engine(database_url)
    try:
        await ensure_schema(engine, auto_migrate=True)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
        with pytest.raises(StorageConfigError, match="does not know"):
            await ensure_schema(engine, auto_migrate=True)
    finally:
        await engine.dispose()


async def test_sqlite_uses_wal(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            fks = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
        assert (mode, fks) == ("wal", 1)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url", "redis://localhost"])
def test_unsupported_database_urls_are_refused(url):
    with pytest.raises(StorageConfigError):
        create_engine(url)


def test_the_head_revision_constant_is_alembics_head():
    """`ensure_schema` skips Alembic when the database is at HEAD_REVISION: it must be the head."""
    assert HEAD_REVISION == head_revision()


async def test_the_audit_chain_migration_chains_the_rows_already_there(database_url):
    """0006 gives the rows written before it seqs and hashes, so the chain verifies from row 1
    and the next row written continues it."""
    from alembic import command

    from storage.migrations_runner import _alembic_config
    from storage.storage import Storage

    engine = create_engine(database_url)
    try:
        def to_0005(conn):
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0005")

        async with engine.begin() as conn:
            await conn.run_sync(to_0005)
            for i in range(3):
                await conn.execute(text(
                    "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (:at, 'admin', 'person.create', :t, '{}')"
                ), {"at": 1000 + i, "t": f"person:p{i}"})
        await ensure_schema(engine, auto_migrate=True)
    finally:
        await engine.dispose()
    storage = await Storage.open(database_url)
    try:
        async with storage.transaction() as tx:
            await tx.audit.record(actor="admin", action="agent.create", target="agent:a", now=2000)
        async with storage.transaction() as tx:
            check = await tx.audit.verify()
            assert check.ok and check.entries == 4
            assert [e.target for e in await tx.audit.page(limit=10)] == ["agent:a", "person:p2", "person:p1", "person:p0"]
    finally:
        await storage.close()
