from __future__ import annotations

import asyncio
import time
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


async def test_a_build_in_progress_is_not_reported_but_a_failed_one_is(db: str, execute: Any, run_check: Any) -> None:
    """The edge of "invalid": a concurrent build that is still running (listed in
    pg_stat_progress_create_index) is invalid too, but it is not a leftover; the failed one next to it is."""
    await execute(db, "CREATE TABLE t (id int PRIMARY KEY, a int)", "INSERT INTO t VALUES (1, 1), (2, 1)")
    with pytest.raises(asyncpg.UniqueViolationError):
        await execute(db, "CREATE UNIQUE INDEX CONCURRENTLY t_a_failed ON t (a)")
    writer, builder, watcher = [await asyncpg.connect(db) for _ in range(3)]
    try:
        # an open writing transaction: the concurrent build creates its (invalid) index, then waits for it
        await writer.execute("BEGIN; INSERT INTO t VALUES (3, 3)")
        build = asyncio.create_task(builder.execute("CREATE INDEX CONCURRENTLY t_a_building ON t (a)"))
        deadline = time.monotonic() + 10
        while not await watcher.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid"
            " WHERE c.relname = 't_a_building')"
        ):
            assert time.monotonic() < deadline, "the concurrent build never showed up in pg_stat_progress"
            await asyncio.sleep(0.05)
        valid = await watcher.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a_building'::regclass")
        assert valid is False  # the build in progress really is an invalid index in the catalog
        findings = await run_check(db, CHECK)
        assert [f.object for f in findings] == ["index t_a_failed"]
        await writer.execute("COMMIT")
        await build  # the build finishes once the writer is gone, and the index turns valid
        valid = await watcher.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a_building'::regclass")
        assert valid is True
    finally:
        for conn in (writer, builder, watcher):
            await conn.close()
