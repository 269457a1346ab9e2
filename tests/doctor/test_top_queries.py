"""Top queries: ranked, normalized, and a warning only for a recurring slow workload (PgHero: ≥ 100 calls and
≥ 20 ms mean), never for a one-off bulk statement."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.top_queries import TopQueriesCheck

CHECK = TopQueriesCheck()


async def _repeat(url: str, sql: str, times: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        for _ in range(times):
            await conn.execute(sql)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


async def test_top_queries_are_ranked_with_normalized_text(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE EXTENSION pg_stat_statements",
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "SELECT pg_stat_statements_reset()",
        *[f"SELECT v FROM t WHERE id = {i}" for i in range(30)],
        "SELECT pg_sleep(0.15)",
    )
    findings = await run_check(db, CHECK)
    by_text = {f.evidence["query"]: f for f in findings}
    lookup = by_text["SELECT v FROM t WHERE id = $1"]
    assert lookup.evidence["calls"] == 30 and "#1 by calls" in lookup.evidence["ranks"]
    once = by_text["SELECT pg_sleep($1)"]
    assert "#1 by mean time" in once.evidence["ranks"]
    assert once.severity is Severity.info and once.fix is None, "one slow call is not a slow workload"
    assert not any("CREATE" in q or "pg_stat_statements_reset" in q for q in by_text), "utility statements are noise"


async def test_a_bulk_load_is_info_and_never_sent_to_the_advisor(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE EXTENSION pg_stat_statements",
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "SELECT pg_stat_statements_reset()",
        "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g",
    )
    [bulk] = await run_check(db, CHECK)
    assert bulk.evidence["query"].startswith("INSERT INTO t SELECT g, md5(g::text) FROM generate_series")
    assert bulk.evidence["calls"] == 1 and bulk.evidence["share_of_time"] == 1.0
    assert bulk.severity is Severity.info and bulk.fix is None
    assert bulk.note == "1 call(s): a one-off statement, not a recurring workload"


async def test_slow_warns_from_100_calls_at_20_ms(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE EXTENSION pg_stat_statements", "SELECT pg_stat_statements_reset()")
    # pg_sleep never returns early: each call is at least 20 ms. Two sessions side by side halve the wait.
    await asyncio.gather(_repeat(db, "SELECT pg_sleep(0.02)", 100), _repeat(db, "SELECT 1, pg_sleep(0.02)", 99))
    by_text = {f.evidence["query"]: f for f in await run_check(db, CHECK)}
    at_threshold = by_text["SELECT pg_sleep($1)"]
    below = by_text["SELECT $1, pg_sleep($2)"]
    assert at_threshold.evidence["calls"] == 100 and at_threshold.severity is Severity.warning
    assert at_threshold.fix == f'pgpulse advise "$DATABASE_URL" --queryid {at_threshold.object.split()[1]}'
    assert below.evidence["calls"] == 99 and below.severity is Severity.info and below.fix is None


async def test_missing_extension_says_how_to_enable_it(db: str, run_check: Any) -> None:
    [finding] = await run_check(db, CHECK)
    assert finding.severity is Severity.warning and finding.object == "extension pg_stat_statements"
    assert finding.fix == "CREATE EXTENSION pg_stat_statements;"  # preloaded on the test server already


async def test_no_workload_means_no_finding(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE EXTENSION pg_stat_statements", "SELECT pg_stat_statements_reset()")
    assert await run_check(db, CHECK) == []
