from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.invalid_indexes import InvalidIndexesCheck

CHECK = InvalidIndexesCheck()


async def test_failed_concurrent_build_is_reported_with_drop_and_rebuild(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE TABLE t (id int PRIMARY KEY, a int)", "INSERT INTO t VALUES (1, 1), (2, 1)")
    with pytest.raises(asyncpg.UniqueViolationError):
        await execute(db, "CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON t (a)")
    [finding] = await run_check(db, CHECK)
    assert finding.severity is Severity.critical and finding.object == "index t_a_unique"
    assert finding.fix is not None
    assert finding.fix.splitlines() == [
        "DROP INDEX CONCURRENTLY t_a_unique;",
        "CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON public.t USING btree (a);",
    ]


async def test_valid_indexes_are_not_reported(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE TABLE t (id int PRIMARY KEY, a int)", "CREATE INDEX CONCURRENTLY t_a ON t (a)")
    assert await run_check(db, CHECK) == []
