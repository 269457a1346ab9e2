from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from pgpulse.doctor.check import Options, Severity
from pgpulse.doctor.checks.connections import ConnectionsCheck
from pgpulse.doctor.checks.long_queries import LongQueriesCheck


async def _wait_for(conn: asyncpg.Connection, sql: str, *args: Any) -> None:
    for _ in range(400):
        if await conn.fetchval(sql, *args):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never true: {sql}")


async def test_idle_in_transaction_and_long_queries_are_reported(db: str, run_check: Any) -> None:
    idle = await asyncpg.connect(db)
    busy = await asyncpg.connect(db)
    watcher = await asyncpg.connect(db)
    try:
        await idle.execute("BEGIN; SELECT 'secret-literal'")
        sleeper = asyncio.create_task(busy.execute("SELECT pg_sleep(30), 'other-secret'"))
        await _wait_for(
            watcher,
            "SELECT bool_and(clock_timestamp() - state_change > interval '1 second') AND count(*) = 2"
            " FROM pg_stat_activity WHERE pid = ANY($1::int[])",
            [idle.get_server_pid(), busy.get_server_pid()],
        )
        options = Options(idle_in_transaction_seconds=1, long_query_seconds=1)
        [idle_finding] = await run_check(db, ConnectionsCheck(), options)
        assert "idle in transaction for" in idle_finding.title
        assert idle_finding.evidence["last_query"] == "BEGIN; SELECT '***'", "the shape, never the literal"
        [long] = await run_check(db, LongQueriesCheck(), options)
        assert long.object == f"backend {busy.get_server_pid()}"
        assert long.evidence["query"] == "SELECT pg_sleep($?), '***'"
        assert long.fix is not None and long.fix.startswith(f"SELECT pg_cancel_backend({busy.get_server_pid()});")
        # threshold edge: the same sessions under the default 60 s are not reported
        assert await run_check(db, LongQueriesCheck()) == []
        assert await run_check(db, ConnectionsCheck()) == []
    finally:
        await idle.close(timeout=2)
        await watcher.close(timeout=2)
        busy.terminate()
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
            await sleeper


async def test_pools_that_cannot_fit_are_critical(db: str, run_check: Any) -> None:
    findings = await run_check(db, ConnectionsCheck(), Options(app_workers=20, pool_size=10, max_overflow=5))
    [pools] = [f for f in findings if f.object == "application pools"]
    assert pools.severity is Severity.critical and pools.evidence["demand"] == 300
    assert "PgBouncer" in (pools.fix or "")


async def test_a_database_connection_limit_bounds_the_pools(db: str, execute: Any, run_check: Any) -> None:
    """The demo banner's `--app-workers 4 --pool-size 10`: SQLAlchemy's default max_overflow makes it 80."""
    name = db.rsplit("/", 1)[1]
    await execute(db, f"ALTER DATABASE {name} CONNECTION LIMIT 40")
    [pools] = await run_check(db, ConnectionsCheck(), Options(app_workers=4, pool_size=10))
    assert pools.severity is Severity.critical and pools.evidence["demand"] == 80 and pools.evidence["usable"] == 40
    assert "SQLAlchemy's default" in pools.title and f"database {name}'s CONNECTION LIMIT" in pools.title
    # edges: 4 × (8 + 1) = 36 is over the 80 % line (32) but fits: a warning; 4 × 8 = 32 is on the line: fine
    [edge] = await run_check(db, ConnectionsCheck(), Options(app_workers=4, pool_size=8, max_overflow=1))
    assert edge.severity is Severity.warning and edge.evidence["demand"] == 36
    assert await run_check(db, ConnectionsCheck(), Options(app_workers=4, pool_size=8, max_overflow=0)) == []


async def test_small_pools_and_quiet_server_are_healthy(db: str, run_check: Any) -> None:
    assert await run_check(db, ConnectionsCheck(), Options(app_workers=2, pool_size=5, max_overflow=5)) == []
