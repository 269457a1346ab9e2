"""Connection churn on the real server: a connection per unit of work (NullPool) is one warning, the same work
through a pool is nothing, the thresholds' edges, a role without privileges, and a server older than 14.

Each database's statistics are its own, and ``pg_stat_reset()`` run in it starts its window: the sessions
the rest of the suite opens elsewhere do not count here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from asyncpg import Record
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from pgpulse.db.urls import async_url
from pgpulse.doctor.check import Context, Options, Severity, SkipCheck
from pgpulse.doctor.checks import ALL
from pgpulse.doctor.checks.connection_churn import CONNECT_COST_SECONDS, SQL, ConnectionChurnCheck

OPENED = 1_500  # above MIN_SESSIONS (1,000): the default thresholds decide
ABANDONED = 20  # of them, left without a Terminate message: over ABANDONED_NOTABLE (1 %)
# A short-lived process that exits with its connections open, as a killed worker or a frozen function does.
EXIT_WITHOUT_CLOSING = """
import asyncio, os, sys
import asyncpg
async def main():
    kept = []
    for _ in range(int(sys.argv[2])):
        kept.append(await asyncpg.connect(sys.argv[1]))
        await kept[-1].fetchval("SELECT 1")
    os._exit(0)
asyncio.run(main())
"""
OTHER_CLIENTS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
)
ROLE, SECRET = "churn_plain", "churn-secret-pw"


async def _reset(url: str) -> None:
    """Zero this database's pg_stat_database row and set its stats_reset: the window starts now."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_reset()")
    finally:
        await conn.close()


async def _quiet(url: str) -> None:
    """Until no other client is connected: a session flushes its statistics before it leaves pg_stat_activity."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(400):
            if not await conn.fetchval(OTHER_CLIENTS):
                return
            await asyncio.sleep(0.025)
        raise AssertionError("other sessions never left")
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def churned(make_database: Any) -> str:
    """NullPool behaviour: a fresh connection for each unit of work, one SELECT, closed (a few never closed)."""
    url = str(await make_database("churn"))
    await _reset(url)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", EXIT_WITHOUT_CLOSING, url, str(ABANDONED))
    assert await process.wait() == 0
    for _ in range(OPENED - ABANDONED):
        conn = await asyncpg.connect(url)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
    await _quiet(url)
    return url


async def test_a_connection_per_unit_of_work_is_one_warning(churned: str, run_check: Any) -> None:
    assert "connection_churn" in {c.name for c in ALL}, "registered: `pgpulse doctor` runs it"
    [finding] = await run_check(churned, ConnectionChurnCheck())
    e = finding.evidence
    assert finding.severity is Severity.warning
    assert finding.object == f"database {churned.rsplit('/', 1)[1]}"
    assert finding.title == (
        f"{e['sessions']:,} sessions since the statistics reset, {e['sessions_per_second']:,} a second, lasting "
        f"{e['mean_session_ms']:,} ms on average: the application opens a connection per request instead of "
        "using a pool"
    )
    # ours, plus the watcher that waited for them to leave and the doctor's own session
    assert OPENED <= e["sessions"] <= OPENED + 10
    assert e["window_since"] == "stats_reset"
    assert e["mean_session_ms"] < 1000 and e["sessions_per_second"] >= 1
    assert e["transactions"] >= OPENED and e["sessions_per_transaction"] >= 0.3, "a session per transaction or two"
    assert e["connect_seconds_estimate"] == round(e["sessions"] * CONNECT_COST_SECONDS, 1)
    assert e["sessions_abandoned"] == ABANDONED
    assert finding.fix is not None
    assert "create_async_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)" in finding.fix
    assert '"statement_cache_size": 0' in finding.fix and "--app-workers W --pool-size P" in finding.fix
    assert finding.note is not None and "an estimate" in finding.note
    assert f"{ABANDONED} sessions (1%) ended without a Terminate message" in finding.note


async def _decide(url: str, checks: Callable[[Record], list[ConnectionChurnCheck]]) -> tuple[Record, list[Any]]:
    """Read this database's row, then run the checks made from it, on one statistics snapshot (cached for the
    transaction): the row they judge is the row read, whatever other sessions flush meanwhile."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(readonly=True):
            row = await conn.fetchrow(SQL)
            ctx = Context(
                conn=conn,
                server_version=int(await conn.fetchval("SHOW server_version_num")),
                database=str(await conn.fetchval("SELECT current_database()")),
                extensions=set(),
                preload_libraries=set(),
                options=Options(),
            )
            return row, [await check.run(ctx) for check in checks(row)]
    finally:
        await conn.close()


async def test_the_thresholds_edges(churned: str) -> None:
    def edges(row: Record) -> list[ConnectionChurnCheck]:
        sessions, mean = row["sessions"], row["session_time"] / 1000 / row["sessions"]
        return [
            ConnectionChurnCheck(min_sessions=sessions + 1),  # one session short
            ConnectionChurnCheck(min_sessions=sessions),
            ConnectionChurnCheck(min_sessions=sessions, max_mean_session_seconds=mean),
            ConnectionChurnCheck(min_sessions=sessions, max_mean_session_seconds=mean * 1.001),
            ConnectionChurnCheck(min_sessions_per_second=1_000_000),
        ]

    row, (below, at, mean_at, mean_above, rate_above) = await _decide(churned, edges)
    assert below == []
    assert [(f.severity, f.evidence["sessions"]) for f in at] == [(Severity.warning, row["sessions"])]
    # a mean at the bar is not short: many sessions a second beside long-lived ones are only info
    [info] = mean_at
    assert info.severity is Severity.info and "some client connects per unit of work" in info.title
    assert [f.severity for f in mean_above] == [Severity.warning]
    assert rate_above == [], "short sessions at a low rate cost little"


async def test_the_same_work_through_a_pool_is_not_reported(db: str, run_check: Any) -> None:
    await _reset(db)
    engine = create_async_engine(async_url(db), pool_size=5, max_overflow=0)

    async def worker(n: int) -> None:
        for _ in range(n):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                await conn.commit()

    try:
        await asyncio.gather(*(worker(OPENED // 5) for _ in range(5)))
    finally:
        await engine.dispose()
    await _quiet(db)
    assert await run_check(db, ConnectionChurnCheck()) == []
    row, _ = await _decide(db, lambda row: [])
    assert row["transactions"] >= OPENED and row["sessions"] <= 10, "the same work, a handful of sessions"


async def test_a_role_without_privileges_gets_the_same_verdict(churned: str, pg_url: str, run_check: Any) -> None:
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"DROP ROLE IF EXISTS {ROLE}")
        await admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SECRET}'")
        plain = make_url(churned).set(username=ROLE, password=SECRET).render_as_string(hide_password=False)
        [finding] = await run_check(plain, ConnectionChurnCheck())
        assert finding.severity is Severity.warning and finding.evidence["sessions"] >= OPENED
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {ROLE}")
        await admin.close()


async def test_a_fresh_database_is_quiet(db: str, run_check: Any) -> None:
    assert await run_check(db, ConnectionChurnCheck()) == []


async def test_before_postgresql_14_it_is_skipped_with_the_reason(db: str) -> None:
    """No PostgreSQL 13 here: the real server, told it is 13, must not query the columns 13 lacks."""
    conn = await asyncpg.connect(db)
    try:
        ctx = Context(
            conn=conn,
            server_version=130016,
            database="d",
            extensions=set(),
            preload_libraries=set(),
            options=Options(),
        )
        with pytest.raises(SkipCheck, match=r"^needs PostgreSQL 14 or later \(pg_stat_database.sessions\); this "):
            await ConnectionChurnCheck().run(ctx)
    finally:
        await conn.close()
