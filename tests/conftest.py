"""One real PostgreSQL per test session: the embedded server, or PGPULSE_TEST_DATABASE_URL when set.

Each test module that needs isolation asks ``make_database`` for a database of its own, so modules never
see each other's tables or statistics and the server starts only once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from pgpulse.db.databases import create_database
from pgpulse.db.urls import libpq_url
from pgpulse.demo.embedded import EmbeddedPostgres, ephemeral_server

MakeDatabase = Callable[..., Awaitable[str]]
pytest_plugins = ["pytester"]
DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")
HYPOPG = Path("/usr/lib/postgresql/15/lib/hypopg.so")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres | None]:
    """The embedded server object (None when an external server is used); fault tests restart it."""
    if os.environ.get("PGPULSE_TEST_DATABASE_URL"):
        yield None
        return
    with ephemeral_server() as server:
        yield server


@pytest.fixture(scope="session")
def hypo_server() -> Iterator[EmbeddedPostgres]:
    """Debian's PostgreSQL 15 with HypoPG (scripts/test.sh installs them), one per session: the advisor's tests
    and its attacks in tests/safety share it."""
    if not HYPOPG.exists():
        if os.environ.get("CI"):
            pytest.fail("postgresql-15-hypopg is missing: scripts/test.sh installs it (run it as root)")
        pytest.skip("needs Debian's postgresql-15 and postgresql-15-hypopg (bash scripts/test.sh installs them)")
    with ephemeral_server(bins=DEBIAN_PG15) as server:
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: EmbeddedPostgres | None) -> str:
    """libpq DSN of the maintenance database (a superuser)."""
    external = os.environ.get("PGPULSE_TEST_DATABASE_URL")
    if external:
        return libpq_url(external)
    assert pg_server is not None
    return pg_server.url()


@pytest.fixture(scope="session")
async def make_database(pg_url: str) -> AsyncIterator[MakeDatabase]:
    """Create a uniquely named empty database and return its libpq DSN; all are dropped at the end."""
    created: list[str] = []

    async def make(prefix: str = "t", extensions: tuple[str, ...] = ()) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        url = await create_database(pg_url, name)
        created.append(name)
        if extensions:
            conn = await asyncpg.connect(url)
            try:
                for ext in extensions:
                    await conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{ext}"')
            finally:
                await conn.close()
        return url

    yield make
    if not os.environ.get("PGPULSE_TEST_DATABASE_URL"):
        return  # the embedded server is deleted whole; each DROP DATABASE would force a checkpoint first
    conn = await asyncpg.connect(pg_url)
    try:
        for name in created:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
