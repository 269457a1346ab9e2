from __future__ import annotations

from typing import Any

import asyncpg

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.bloat import BloatCheck, estimated_table_bloat
from pgpulse.doctor.checks.index_bloat import IndexBloatCheck, expected_index_pages

CHECK = BloatCheck(min_bytes=256 * 1024)
INDEXES = IndexBloatCheck(min_bytes=256 * 1024)
BLOATED = [
    "CREATE TABLE fat (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)",
    "INSERT INTO fat SELECT g, repeat('x', 100) FROM generate_series(1, 40000) g",
    "DELETE FROM fat WHERE id % 10 <> 0",
    "VACUUM fat",  # space is now free but not returned: the file keeps its size
    "ANALYZE fat",
]
LEAN = [
    "CREATE TABLE lean (id int PRIMARY KEY, pad text)",
    "INSERT INTO lean SELECT g, repeat('x', 100) FROM generate_series(1, 40000) g",
    "VACUUM ANALYZE lean",
]


async def test_measured_with_pgstattuple_tables_and_indexes(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE EXTENSION pgstattuple", *BLOATED, *LEAN)
    findings = {f.object: f for f in await run_check(db, CHECK)}
    assert set(findings) == {"table fat"}
    table = findings["table fat"]
    assert table.evidence["method"] == "pgstattuple_approx"
    assert table.evidence["bloat_fraction"] > 0.8 and table.severity is Severity.critical
    assert "VACUUM FULL fat" in (table.fix or "")
    [index] = await run_check(db, INDEXES)
    assert index.object == "index fat_pkey" and index.evidence["method"] == "pgstatindex"
    assert index.evidence["avg_leaf_density"] < 50 and index.fix == "REINDEX INDEX CONCURRENTLY fat_pkey;"


async def test_estimated_without_pgstattuple(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, *BLOATED, *LEAN)
    findings = {f.object: f for f in await run_check(db, CHECK)}
    assert set(findings) == {"table fat"}
    assert findings["table fat"].evidence["method"].startswith("estimate")
    assert findings["table fat"].evidence["bloat_fraction"] > 0.6
    [index] = await run_check(db, INDEXES)  # 90 % of the entries deleted: ~90 % of the pages are waste
    assert index.object == "index fat_pkey" and index.evidence["method"].startswith("estimate")
    assert index.evidence["bloat_fraction"] > 0.8 and index.fix == "REINDEX INDEX CONCURRENTLY fat_pkey;"


async def test_index_estimate_edges(db: str, execute: Any, run_check: Any) -> None:
    """A fresh btree is estimated at its real size; 40 % of the entries deleted stays under the 50 % line,
    60 % deleted crosses it (vacuum empties the entries but keeps the leaf pages)."""
    statements = []
    for table, keep in (("gone40", "id % 5 IN (0, 1, 2)"), ("gone60", "id % 5 IN (0, 1)")):
        statements += [
            f"CREATE TABLE {table} (id int PRIMARY KEY) WITH (autovacuum_enabled = false)",
            f"INSERT INTO {table} SELECT generate_series(1, 40000)",
            f"DELETE FROM {table} WHERE NOT ({keep})",
            f"VACUUM ANALYZE {table}",
        ]
    await execute(db, *LEAN, *statements, "SELECT pg_stat_force_next_flush()")
    [index] = await run_check(db, INDEXES)
    assert index.object == "index gone60_pkey" and 0.55 < index.evidence["bloat_fraction"] < 0.65
    conn = await asyncpg.connect(db)
    try:
        built = await conn.fetchval("SELECT pg_relation_size('lean_pkey') / 8192")
    finally:
        await conn.close()
    # the fresh index: the estimate is within 3 % of what PostgreSQL built (the inner pages are not counted)
    assert abs(expected_index_pages(40000, 4, False, 8192, 90) - built) <= built * 0.03


def test_estimate_is_zero_without_statistics() -> None:
    assert estimated_table_bloat(0, 10, 50, 8192, 100) == 0.0
    assert estimated_table_bloat(1000, 100, 100, 8192, 100) > 0.8
