"""Fault tests get a PostgreSQL of their own (they restart it and kill its backends) and a seeded CitizenApp.

Helpers shared by the test files are fixtures here: an in-process client, a real uvicorn on loopback (so a
client disconnect is a real TCP disconnect), and the two things every fault test checks at the end: the
pool is idle again and PostgreSQL shows no backend of the app stuck in a transaction or a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from pgpulse.db.databases import create_database
from pgpulse.db.health import pool_state
from pgpulse.demo.app import create_app
from pgpulse.demo.embedded import EmbeddedPostgres, ephemeral_server, free_port
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.pgbouncer import PgBouncerError, PgBouncerMissing
from pgpulse.demo.pgbouncer import pgbouncer as start_pgbouncer
from pgpulse.demo.seed import SeedResult, SeedSpec, seed
from pgpulse.settings import Settings

SPEC = SeedSpec(users=60, posts=3_000, comments_per_post=2.0, hot_users=2, hot_share=0.4)
APP_NAME = "pgpulse"  # application_name the engine sets on every connection


@dataclass
class CitizenDB:
    server: EmbeddedPostgres
    url: str  # libpq DSN of the seeded database
    seeded: SeedResult


@dataclass
class Running:
    app: FastAPI
    client: httpx.AsyncClient
    base_url: str


def fault_settings(**overrides: Any) -> Settings:
    """Small, fast-failing settings: faults must show up in seconds, not after the production defaults."""
    values: dict[str, Any] = {
        "database_url": None,
        "pool_size": 4,
        "max_overflow": 2,
        "pool_timeout": 1.0,
        "connect_timeout": 2.0,
        "profiler_enabled": True,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_for() -> Callable[..., Settings]:
    """``settings_for(pool_size=1, ...)``: the fault settings with overrides."""
    return fault_settings


@pytest.fixture(scope="package")
def fault_pg() -> Iterator[EmbeddedPostgres]:
    """Our own server: restarting the session-wide one would break tests running next to us."""
    with ephemeral_server() as server:
        yield server


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def citizen_db(fault_pg: EmbeddedPostgres) -> CitizenDB:
    url = await create_database(fault_pg.url(), "citizen_faults")
    await upgrade_async(url)
    return CitizenDB(server=fault_pg, url=url, seeded=await seed(url, SPEC))


@contextlib.asynccontextmanager
async def _in_process(url: str, settings: Settings, setup: Callable[[FastAPI], None] | None) -> AsyncIterator[Running]:
    app = create_app(url, settings)
    if setup is not None:
        setup(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://citizen") as client:
            yield Running(app=app, client=client, base_url="http://citizen")


@contextlib.asynccontextmanager
async def _over_tcp(url: str, settings: Settings, setup: Callable[[FastAPI], None] | None) -> AsyncIterator[Running]:
    app = create_app(url, settings)
    if setup is not None:
        setup(app)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start: {task.exception() if task.done() else 'timeout'}")
        await asyncio.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            yield Running(app=app, client=client, base_url=base)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[Running]]


@pytest.fixture
def citizen_app() -> AppFactory:
    """``async with citizen_app(url, settings, setup=..., tcp=False) as running``: CitizenApp started for real."""

    def make(
        url: str, settings: Settings | None = None, setup: Callable[[FastAPI], None] | None = None, tcp: bool = False
    ) -> contextlib.AbstractAsyncContextManager[Running]:
        return (_over_tcp if tcp else _in_process)(url, settings or fault_settings(), setup)

    return make


async def _wait_pool_idle(app: FastAPI, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = pool_state(app.state.engine)
        if state.get("checked_out") == 0 or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.05)


@pytest.fixture
def wait_pool_idle() -> Callable[..., Awaitable[dict[str, Any]]]:
    """Pool state once nothing is checked out (or after ``timeout``): assert ``checked_out == 0`` on it."""
    return _wait_pool_idle


async def _stuck_backends(url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The app's backends still running a query or sitting in a transaction, after up to ``timeout`` s."""
    sql = (
        "SELECT pid, state, left(query, 80) AS query FROM pg_stat_activity "
        "WHERE application_name = $1 AND state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(url)
    try:
        while True:
            rows = [dict(r) for r in await conn.fetch(sql, APP_NAME)]
            if not rows or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


@pytest.fixture
def stuck_backends() -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    return _stuck_backends


@contextlib.asynccontextmanager
async def _table_locked(url: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold ACCESS EXCLUSIVE on ``table`` in another session: every query touching it waits, for real."""
    conn = await asyncpg.connect(url, server_settings={"application_name": "fault-locker"})
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await tx.rollback()
        await conn.close()


@pytest.fixture
def table_locked() -> Callable[[str, str], contextlib.AbstractAsyncContextManager[asyncpg.Connection]]:
    return _table_locked


async def _blocked_pids(conn: asyncpg.Connection) -> list[int]:
    """Backends of the app waiting on a lock right now (a fresh stats snapshot: ``conn`` may be in a transaction)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", APP_NAME
    )
    return [int(r["pid"]) for r in rows]


@pytest.fixture
def blocked_pids() -> Callable[[asyncpg.Connection], Awaitable[list[int]]]:
    return _blocked_pids


@dataclass
class Bouncer:
    port: int
    url: str  # libpq DSN of the CitizenApp database through PgBouncer
    log_path: Path


def _missing_pgbouncer(reason: str) -> NoReturn:
    """Under CI a missing PgBouncer is a broken setup (scripts/test.sh installs it), not a reason to pass: fail,
    as the HypoPG fixture does. On a developer's machine without root the tests are skipped with the reason."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def pgbouncer(citizen_db: CitizenDB) -> Iterator[Bouncer]:
    """PgBouncer 1.18 in transaction mode in front of the fault server, 3 server connections for many clients."""
    database = make_url(citizen_db.url).database
    assert database
    try:
        with start_pgbouncer(citizen_db.server, database, pool_size=3, max_clients=300) as bouncer:
            url = make_url(citizen_db.url).set(port=bouncer.port).render_as_string(hide_password=False)
            yield Bouncer(port=bouncer.port, url=url, log_path=bouncer.log_path)
    except PgBouncerMissing as exc:
        _missing_pgbouncer(str(exc))
    except PgBouncerError as exc:
        pytest.fail(str(exc))


def _doctor(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``pgpulse doctor ARGS`` in a fresh process, as users run it (no DATABASE_URL from our environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPULSE_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "doctor", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def run_doctor() -> Callable[..., subprocess.CompletedProcess[str]]:
    return _doctor


def _assert_one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str, secret: str = "") -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    if secret:
        assert secret not in result.stderr + result.stdout
    return lines[0]


@pytest.fixture
def one_line_exit_2() -> Callable[..., str]:
    """Assert the doctor failed the way users should see it: one ``error:`` line, exit 2, no secret."""
    return _assert_one_line_exit_2
