from __future__ import annotations

from typing import Any

import asyncpg

from pgpulse.doctor.checks.missing_indexes import MissingIndexesCheck

CHECK = MissingIndexesCheck(min_rows=10_000, min_avg_rows_per_scan=5_000, min_seq_scans=10)
LOAD = [
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE TABLE events (id int PRIMARY KEY, account int, at timestamptz)",
    "INSERT INTO events SELECT g, g % 500, now() FROM generate_series(1, 20000) g",
    "ANALYZE events",
    "SELECT pg_stat_statements_reset()",
]


async def test_seq_scanned_large_table_is_reported_with_its_statements(db: str, execute: Any, run_check: Any) -> None:
    queries = [f"SET max_parallel_workers_per_gather = 0; SELECT * FROM events WHERE account = {i}" for i in range(12)]
    await execute(db, *LOAD, *queries)
    [finding] = await run_check(db, CHECK)
    assert finding.object == "table events"
    assert finding.evidence["seq_scan"] >= 12 and finding.evidence["avg_rows_per_seq_scan"] >= 15_000
    assert finding.evidence["idx_scan"] == 0
    [top] = finding.evidence["top_statements"]
    assert top["query"] == "SELECT * FROM events WHERE account = $1" and top["calls"] == 12
    assert "pgpulse advise" in (finding.fix or "") and "--table events" in (finding.fix or "")


async def test_indexed_lookups_are_not_a_signal(db: str, execute: Any, run_check: Any) -> None:
    queries = [f"SELECT * FROM events WHERE account = {i}" for i in range(12)]
    await execute(db, *LOAD, "CREATE INDEX events_account ON events (account)", "ANALYZE events", *queries)
    assert await run_check(db, CHECK) == []


async def test_nine_sequential_scans_are_not_yet_a_signal(db: str, execute: Any, run_check: Any) -> None:
    # eight queries, plus the primary key's build on the empty table (a sequential scan of 0 rows): nine scans
    queries = [f"SET max_parallel_workers_per_gather = 0; SELECT * FROM events WHERE account = {i}" for i in range(8)]
    await execute(db, *LOAD, *queries)
    conn = await asyncpg.connect(db)
    try:
        assert await conn.fetchval("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'events'") == 9
    finally:
        await conn.close()
    assert await run_check(db, CHECK) == []  # min_seq_scans is 10
