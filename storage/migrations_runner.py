"""Bring a database to the schema this code expects, or say why it is not there.

`agentnet run` calls `ensure_schema`: with auto-migration on it upgrades to head; with it off
it refuses to start on a database that is behind (or ahead, after a downgrade of the code).

Alembic is imported only when the database is not at `HEAD_REVISION`: it is some 11 MB of a
running node's memory, and a node that starts on a current schema never needs it.
`tests/storage/test_migrations.py` checks that the constant is Alembic's head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.errors import StorageConfigError

if TYPE_CHECKING:
    from alembic.config import Config

    from storage.sqlite import SqliteEngine

__all__ = ["HEAD_REVISION", "current_revision", "ensure_schema", "head_revision", "upgrade_to_head"]

# The newest file in migrations/versions; a new migration changes it.
HEAD_REVISION = "0017"
_SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


async def current_revision(engine: AsyncEngine | SqliteEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade_to_head(engine: AsyncEngine | SqliteEngine) -> None:
    from alembic import command

    def upgrade(conn: Connection) -> None:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)


async def _at_head(engine: AsyncEngine | SqliteEngine) -> bool:
    """True if the database records `HEAD_REVISION`, read without Alembic."""
    try:
        async with engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except DBAPIError:  # no such table yet: a new database
        return False
    return versions == [HEAD_REVISION]


async def ensure_schema(engine: AsyncEngine | SqliteEngine, *, auto_migrate: bool) -> None:
    if await _at_head(engine):
        return
    from alembic.script import ScriptDirectory

    current, head = await current_revision(engine), head_revision()
    if current == head:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if current is not None and current not in known:
        raise StorageConfigError(
            f"the database is at schema revision {current}, which this version of agentnet "
            "does not know (was it written by a newer version?); refusing to start"
        )
    if not auto_migrate:
        raise StorageConfigError(
            f"the database schema is at {current or 'nothing'} but this version needs {head}; "
            "run `agentnet migrate` or start with auto_migrate enabled"
        )
    await upgrade_to_head(engine)
