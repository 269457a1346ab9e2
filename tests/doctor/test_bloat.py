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
# 100-byte rows: a 136-byte tuple plus its 4-byte line pointer, 58 to an 8 kB page (8168 usable bytes)
ROWS_PER_PAGE = 58
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


def _table(name: str, rows: int, delete: str) -> list[str]:
    """A table of ``rows`` 100-byte rows, ``delete`` removed and vacuumed without truncation (the file keeps
    its size and the freed space is in the free space map, which pgstattuple_approx reads)."""
    return [
        f"CREATE TABLE {name} (id int, pad text) WITH (autovacuum_enabled = false)",
        f"INSERT INTO {name} SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) g",
        f"DELETE FROM {name} WHERE {delete}",
        f"VACUUM (TRUNCATE false, ANALYZE) {name}",
    ]


async def test_measured_edges_size_and_fraction(db: str, execute: Any, run_check: Any) -> None:
    """The documented thresholds with pgstattuple: 1 MB (a 90 % bloated table one page under it is ignored,
    one of exactly 1 MB is reported), 30 % (warning) and 60 % (critical), each just below and just above."""
    tables = {
        "under_1mb": (ROWS_PER_PAGE * 127, "id % 10 <> 0"),
        "at_1mb": (ROWS_PER_PAGE * 128, "id % 10 <> 0"),
        "free29": (ROWS_PER_PAGE * 200, "id % 20 < 6"),
        "free34": (ROWS_PER_PAGE * 200, "id % 20 < 7"),
        "free58": (ROWS_PER_PAGE * 200, "id % 20 < 12"),
        "free63": (ROWS_PER_PAGE * 200, "id % 20 < 13"),
    }
    statements = [s for name, (rows, delete) in tables.items() for s in _table(name, rows, delete)]
    await execute(db, "CREATE EXTENSION pgstattuple", *statements)
    conn = await asyncpg.connect(db)
    try:
        sizes = {name: await conn.fetchval("SELECT pg_relation_size($1::regclass)", name) for name in tables}
        measured = {
            name: await conn.fetchval(
                "SELECT (dead_tuple_percent + approx_free_percent) / 100 FROM pgstattuple_approx($1::regclass)", name
            )
            for name in tables
        }
    finally:
        await conn.close()
    assert sizes["under_1mb"] == (1 << 20) - 8192 and sizes["at_1mb"] == 1 << 20
    # what PostgreSQL measures lands on each side of the lines, so the check alone decides
    assert 0.25 <= measured["free29"] < 0.30 <= measured["free34"] < 0.35
    assert 0.55 <= measured["free58"] < 0.60 <= measured["free63"] < 0.65
    findings = {f.object: f for f in await run_check(db, BloatCheck())}
    assert {name: f.severity for name, f in findings.items()} == {
        "table at_1mb": Severity.critical,
        "table free34": Severity.warning,
        "table free58": Severity.warning,
        "table free63": Severity.critical,
    }
    assert all(f.evidence["method"] == "pgstattuple_approx" for f in findings.values())
