"""Fixtures shared by the whole suite: a fresh database per test on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from storage.storage import Storage

POSTGRES_ADMIN_URL = os.environ.get(
    "AGENTNET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("AGENTNET_REQUIRE_POSTGRES") == "1"


def _postgres_problem() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
        await conn.close()

    # Run in a thread: this may be reached from inside a running event loop.
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {e}"
    return None


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    problem = _postgres_problem()
    if problem and REQUIRE_POSTGRES:
        pytest.fail(problem + " (AGENTNET_REQUIRE_POSTGRES=1)")
    if problem:
        pytest.skip(problem)
    return True


async def _create_postgres_database() -> str:
    name = "agentnet_test_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def _drop_postgres_database(url: str) -> None:
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request, tmp_path) -> AsyncIterator[str]:
    """An empty database of each backend, made for this test and dropped after it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
        return
    request.getfixturevalue("postgres_available")
    url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(url)


@pytest.fixture
async def postgres_url(postgres_available) -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, dropped after it."""
    url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(url)


@pytest.fixture
async def storage(database_url) -> AsyncIterator[Storage]:
    store = await Storage.open(database_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(autouse=True)
def _restore_logging():
    """A test that runs the CLI in-process configures the root logger with a handler on the
    stream pytest gives it; put the logger back so later tests do not write to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
