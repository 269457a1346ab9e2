from __future__ import annotations

from typing import Any

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.vacuum import VacuumCheck, proposed_scale_factors

CHURNED = [
    "CREATE TABLE churn (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)",
    "INSERT INTO churn SELECT g, 0 FROM generate_series(1, 30000) g",
    "UPDATE churn SET v = 1",
]


async def test_dead_tuples_with_autovacuum_off_are_critical(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, *CHURNED)
    findings = await run_check(db, VacuumCheck())
    [dead] = [f for f in findings if "dead tuples" in f.title]
    # 30,000 dead next to 30,000 live: a 0.5 dead ratio, which the check's thresholds call critical (>= 0.5)
    assert dead.severity is Severity.critical
    assert dead.evidence["n_dead_tup"] == 30_000 and dead.evidence["dead_ratio"] == 0.5
    assert dead.evidence["autovacuum_enabled"] is False
    assert dead.title == "churn is 50% dead tuples (30,000 dead, 30,000 live) and autovacuum is disabled on it"
    assert dead.fix == "VACUUM (ANALYZE, VERBOSE) churn;\nALTER TABLE churn RESET (autovacuum_enabled);"


async def test_large_busy_table_gets_per_table_scale_factors(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, *CHURNED, "VACUUM churn")
    findings = await run_check(db, VacuumCheck(large_table_rows=20_000))
    [proposal] = [f for f in findings if "autovacuum_vacuum_scale_factor" in (f.fix or "")]
    # vacuum after ~50,000 dead rows: 50,000 / 30,000 live is above the 0.2 cap; analyze at half of it
    assert proposal.fix == (
        "ALTER TABLE churn SET (autovacuum_vacuum_scale_factor = 0.2, autovacuum_analyze_scale_factor = 0.1);"
    )


def test_scale_factors_shrink_with_table_size() -> None:
    assert proposed_scale_factors(100_000) == (0.2, 0.1)
    assert proposed_scale_factors(10_000_000) == (0.005, 0.0025)
    assert proposed_scale_factors(10**10) == (0.001, 0.0005)


async def test_vacuumed_table_is_healthy(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE TABLE ok (id int PRIMARY KEY)", "INSERT INTO ok SELECT generate_series(1, 30000)")
    await execute(db, "DELETE FROM ok WHERE id % 100 = 0", "VACUUM ok")
    assert await run_check(db, VacuumCheck()) == []


async def test_dead_tuple_threshold_edges(db: str, execute: Any, run_check: Any) -> None:
    """10,000 dead rows at 10 % of the table is reported; 9,999 dead rows (at 50 %) is not."""
    await execute(
        db,
        "CREATE TABLE at_edge (id int PRIMARY KEY) WITH (autovacuum_enabled = false)",
        "INSERT INTO at_edge SELECT generate_series(1, 100000)",
        "DELETE FROM at_edge WHERE id <= 10000",
        "CREATE TABLE below (id int PRIMARY KEY) WITH (autovacuum_enabled = false)",
        "INSERT INTO below SELECT generate_series(1, 19998)",
        "DELETE FROM below WHERE id <= 9999",
    )
    dead = [f for f in await run_check(db, VacuumCheck()) if "dead tuples" in f.title]
    assert [(f.object, f.evidence["n_dead_tup"], f.evidence["dead_ratio"]) for f in dead] == [
        ("table at_edge", 10000, 0.1)
    ]
