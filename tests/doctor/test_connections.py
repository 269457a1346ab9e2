from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from pgpulse.doctor.check import Options, Severity
from pgpulse.doctor.checks.connections import ConnectionsCheck


async def test_idle_in_transaction_and_long_queries_are_reported(db: str, run_check: Any) -> None:
    idle = await asyncpg.connect(db)
    busy = await asyncpg.connect(db)
    try:
        await idle.execute("BEGIN; SELECT 1")
        sleeper = asyncio.create_task(busy.execute("SELECT pg_sleep(5)"))
        await asyncio.sleep(1.3)
        findings = await run_check(db, ConnectionsCheck(idle_tx_seconds=1, long_query_seconds=1))
        states = {f.evidence["state"]: f for f in findings if "state" in f.evidence}
        assert set(states) == {"idle in transaction", "active"}
        assert "idle in transaction for" in states["idle in transaction"].title
        assert "pg_terminate_backend" in (states["active"].fix or "")
        assert states["active"].evidence["query"] == "SELECT pg_sleep(5)"
        sleeper.cancel()
    finally:
        await idle.close(timeout=2)
        busy.terminate()


async def test_pools_that_cannot_fit_are_critical(db: str, run_check: Any) -> None:
    findings = await run_check(db, ConnectionsCheck(), Options(app_workers=20, pool_size=10, max_overflow=5))
    [pools] = [f for f in findings if f.object == "application pools"]
    assert pools.severity is Severity.critical and pools.evidence["demand"] == 300
    assert "PgBouncer" in (pools.fix or "")


async def test_small_pools_and_quiet_server_are_healthy(db: str, run_check: Any) -> None:
    assert await run_check(db, ConnectionsCheck(), Options(app_workers=2, pool_size=5, max_overflow=5)) == []
