from __future__ import annotations

from typing import Any

from pgpulse.doctor.checks.stale_statistics import StaleStatisticsCheck

CHECK = StaleStatisticsCheck()


async def test_bulk_load_without_analyze_is_reported(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE TABLE loaded (id int PRIMARY KEY) WITH (autovacuum_enabled = false)",
        "INSERT INTO loaded SELECT generate_series(1, 5000)",
        "CREATE TABLE changed (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)",
        "INSERT INTO changed SELECT g, 0 FROM generate_series(1, 5000) g",
        "SELECT pg_stat_force_next_flush()",
    )
    await execute(db, "ANALYZE changed")
    await execute(db, "UPDATE changed SET v = 1 WHERE id <= 2000")
    findings = {f.object: f for f in await run_check(db, CHECK)}
    assert set(findings) == {"table loaded", "table changed"}
    assert findings["table loaded"].title == "loaded has never been analyzed (5,000 rows changed)"
    assert findings["table changed"].evidence["n_mod_since_analyze"] == 2000
    assert findings["table changed"].fix == "ANALYZE changed;"


async def test_analyzed_table_is_healthy(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 5000)")
    await execute(db, "ANALYZE t")
    assert await run_check(db, CHECK) == []
