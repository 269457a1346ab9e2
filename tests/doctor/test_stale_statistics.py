from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from pgpulse.doctor.checks.stale_statistics import StaleStatisticsCheck

CHECK = StaleStatisticsCheck()


async def test_bulk_load_without_analyze_is_reported(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE TABLE loaded (id int PRIMARY KEY) WITH (autovacuum_enabled = false)",
        "INSERT INTO loaded SELECT generate_series(1, 5000)",
        "CREATE TABLE changed (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)",
        "INSERT INTO changed SELECT g, 0 FROM generate_series(1, 5000) g",
        "CREATE TABLE edge (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)",
        "INSERT INTO edge SELECT g, 0 FROM generate_series(1, 5000) g",
    )
    await execute(db, "ANALYZE changed, edge")
    # 2,000 of 5,000 rows is 40 %: stale; 999 rows is under the 1,000-row minimum: not yet.
    await execute(db, "UPDATE changed SET v = 1 WHERE id <= 2000", "UPDATE edge SET v = 1 WHERE id <= 999")
    findings = {f.object: f for f in await run_check(db, CHECK)}
    assert set(findings) == {"table loaded", "table changed"}
    assert findings["table loaded"].title == "loaded has never been analyzed (5,000 rows changed)"
    assert findings["table changed"].evidence["changed_since_analyze"] == 2000
    assert findings["table changed"].title == "changed changed 2,000 rows (40%) since its last ANALYZE"
    assert findings["table changed"].fix == "ANALYZE changed;"


async def test_a_load_and_analyze_in_one_session_is_not_stale(db: str, run_check: Any, pg_url: str) -> None:
    """The load's counters flush after the ANALYZE (at session end): n_mod_since_analyze says 100 %."""
    conn = await asyncpg.connect(db)
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
    await conn.execute("INSERT INTO t SELECT generate_series(1, 5000)")
    await conn.execute("ANALYZE t")
    await conn.close()
    watcher = await asyncpg.connect(db)
    try:
        for _ in range(200):  # the exiting backend flushes its counters; wait until they are visible
            mods = await watcher.fetchval("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 't'")
            if mods == 5000:
                break
            await asyncio.sleep(0.05)
            await watcher.execute("SELECT pg_stat_clear_snapshot()")
        assert mods == 5000, "the counters look exactly like a 100 % change since ANALYZE"
    finally:
        await watcher.close()
    assert await run_check(db, CHECK) == []


async def test_analyzed_table_is_healthy(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 5000)")
    await execute(db, "ANALYZE t")
    assert await run_check(db, CHECK) == []
