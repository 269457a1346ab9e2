from __future__ import annotations

from typing import Any

import asyncpg

from pgpulse.doctor.checks.wraparound import WraparoundCheck
from pgpulse.doctor.runner import run_checks


async def test_tables_older_than_the_threshold_are_reported(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE TABLE old (id int)", "INSERT INTO old VALUES (1)")
    findings = await run_check(db, WraparoundCheck(min_age=0))
    database = [f for f in findings if f.object.startswith("database ")]
    tables = [f for f in findings if f.object.startswith("table ")]
    assert len(database) == 1 and database[0].evidence["age"] > 0
    assert 1 <= len(tables) <= 10, "the oldest ten tables"
    assert all(t.fix == f"VACUUM (FREEZE, VERBOSE) {t.object.removeprefix('table ')};" for t in tables)
    assert tables == sorted(tables, key=lambda t: -t.evidence["age"])


async def test_young_database_is_healthy(db: str, run_check: Any) -> None:
    assert await run_check(db, WraparoundCheck()) == []


async def test_the_database_age_threshold_edge(db: str) -> None:
    """Reported once the age is past the threshold, not at it (ages only grow, so age − 1 is safely past)."""
    conn = await asyncpg.connect(db)
    try:
        age = await conn.fetchval("SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()")
    finally:
        await conn.close()
    past = (await run_checks(db, checks=(WraparoundCheck(min_age=age - 1),))).findings
    assert any(f.object.startswith("database ") for f in past)
    far = (await run_checks(db, checks=(WraparoundCheck(min_age=age + 1_000_000),))).findings
    assert far == []
