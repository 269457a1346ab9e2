from __future__ import annotations

from typing import Any

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.unused_indexes import UnusedIndexesCheck

CHECK = UnusedIndexesCheck()


async def test_never_scanned_index_is_reported_with_size_window_and_drop(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE TABLE parent (id int PRIMARY KEY)",
        "CREATE TABLE t (id int PRIMARY KEY, a int, b text UNIQUE, p int REFERENCES parent)",
        "INSERT INTO parent SELECT g FROM generate_series(1, 10) g",
        "INSERT INTO t SELECT g, g % 10, g::text, 1 + g % 10 FROM generate_series(1, 5000) g",
        "CREATE INDEX t_used ON t (a, id)",
        "ANALYZE t",
        "SET enable_seqscan = off; SELECT id FROM t WHERE a = 3 ORDER BY a, id",
        "CREATE INDEX t_a ON t (a)",
        "CREATE INDEX t_p ON t (p)",
    )
    findings = {f.object: f for f in await run_check(db, CHECK)}
    assert set(findings) == {"index t_a", "index t_p"}  # PK, UNIQUE and the scanned index are not listed
    unused = findings["index t_a"]
    assert unused.fix == "DROP INDEX CONCURRENTLY t_a;"
    assert unused.evidence["idx_scan"] == 0 and unused.evidence["size_bytes"] > 0
    assert unused.severity is Severity.info, "a statistics window under 7 days is too short to warn"
    assert "since" in unused.note and "Replicas keep their own counters" in unused.note
    assert "foreign key" in findings["index t_p"].note


async def test_healthy_database_has_no_unused_index(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, a int)",
        "CREATE INDEX t_a ON t (a)",
        "SET enable_seqscan = off; SELECT * FROM t WHERE a = 1",
    )
    assert await run_check(db, CHECK) == []
