"""`pgpulse doctor` on the demo database fires what the README says: every check but the five that need
live sessions, a replica or a thousand short sessions (wraparound needs two billion transactions)."""

from __future__ import annotations

from typing import Any

from pgpulse.demo.database import open_demo_database
from pgpulse.demo.problems import plant_problems
from pgpulse.doctor.check import Options, Severity
from pgpulse.doctor.checks import ALL
from pgpulse.doctor.runner import run_checks

# README, Doctor section: "On the demo database every check fires except wraparound, long-running
# queries, blocked queries, replication and connection churn"
NOT_ON_THE_DEMO = {"wraparound", "long_queries", "blocked_queries", "replication", "connection_churn"}


async def test_every_check_but_the_live_ones_fires_on_the_demo(db: str) -> None:
    await open_demo_database(db, adopt_empty=True)  # as `pgpulse demo` does: problems are planted only where marked
    await plant_problems(db)
    # the banner's own options
    report = await run_checks(db, Options(app_workers=4, pool_size=10))
    fired = {r.name for r in report.results if r.findings}
    assert fired == {c.name for c in ALL} - NOT_ON_THE_DEMO
    by_check: dict[str, list[Any]] = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    [pools] = [f for f in by_check["connections"] if f.object == "application pools"]
    assert pools.severity is Severity.critical and pools.evidence["demand"] == 80
    assert any(f.severity is Severity.warning and "audit_events" in f.title for f in by_check["top_queries"])
    [sequence] = by_check["sequences"]
    assert sequence.object == "column order_counters.id" and sequence.severity is Severity.critical
