from __future__ import annotations

from typing import Any

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.bloat import BloatCheck, estimated_table_bloat

CHECK = BloatCheck(min_bytes=256 * 1024)
BLOATED = [
    "CREATE TABLE fat (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)",
    "INSERT INTO fat SELECT g, repeat('x', 100) FROM generate_series(1, 40000) g",
    "DELETE FROM fat WHERE id % 10 <> 0",
    "VACUUM fat",  # space is now free but not returned: the file keeps its size
    "ANALYZE fat",
]


async def test_measured_with_pgstattuple_tables_and_indexes(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE EXTENSION pgstattuple", *BLOATED)
    findings = {f.object: f for f in await run_check(db, CHECK)}
    table = findings["table fat"]
    assert table.evidence["method"] == "pgstattuple_approx"
    assert table.evidence["bloat_fraction"] > 0.8 and table.severity is Severity.critical
    assert "VACUUM FULL fat" in (table.fix or "")
    index = findings["index fat_pkey"]
    assert index.evidence["avg_leaf_density"] < 50 and index.fix == "REINDEX INDEX CONCURRENTLY fat_pkey;"


async def test_estimated_without_pgstattuple(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, *BLOATED)
    findings = {f.object: f for f in await run_check(db, CHECK)}
    assert findings["table fat"].evidence["method"].startswith("estimate")
    assert findings["table fat"].evidence["bloat_fraction"] > 0.6
    assert not any(o.startswith("index") for o in findings), "index bloat needs pgstattuple"


async def test_freshly_loaded_table_is_healthy(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE EXTENSION pgstattuple",
        "CREATE TABLE lean (id int PRIMARY KEY, pad text)",
        "INSERT INTO lean SELECT g, repeat('x', 100) FROM generate_series(1, 40000) g",
        "VACUUM ANALYZE lean",
    )
    assert await run_check(db, CHECK) == []


def test_estimate_is_zero_without_statistics() -> None:
    assert estimated_table_bloat(0, 10, 50, 8192, 100) == 0.0
    assert estimated_table_bloat(1000, 100, 100, 8192, 100) > 0.8
