from __future__ import annotations

from typing import Any

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.top_queries import TopQueriesCheck

CHECK = TopQueriesCheck()


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
    slow = by_text["SELECT pg_sleep($1)"]
    assert slow.severity is Severity.warning and slow.evidence["mean_ms"] >= 150
    assert "#1 by mean time" in slow.evidence["ranks"] and "--queryid" in (slow.fix or "")
    assert not any("CREATE" in q or "pg_stat_statements_reset" in q for q in by_text), "utility statements are noise"


async def test_missing_extension_says_how_to_enable_it(db: str, run_check: Any) -> None:
    [finding] = await run_check(db, CHECK)
    assert finding.severity is Severity.warning and finding.object == "extension pg_stat_statements"
    assert finding.fix == "CREATE EXTENSION pg_stat_statements;"  # preloaded on the test server already


async def test_no_workload_means_no_finding(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE EXTENSION pg_stat_statements", "SELECT pg_stat_statements_reset()")
    assert await run_check(db, CHECK) == []
