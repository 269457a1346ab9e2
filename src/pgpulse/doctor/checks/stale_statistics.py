"""Stale statistics: tables changed a lot since the planner last sampled them (or never sampled).

The planner picks plans from ``pg_statistic``; after a bulk load or a wave of updates it still plans for
the old data (an empty table, a uniform column) and picks nested loops over millions of rows. ANALYZE is
cheap: it reads a sample. Run it after every bulk load.

Threshold: at least ``MIN_CHANGES`` (1,000) rows changed and at least ``CHANGED_FRACTION`` (20 %) of the
live rows, or never analyzed at all with 1,000 changes.

Why not ``n_mod_since_analyze`` alone: a backend flushes its counters to pg_stat only at the end of a
transaction (at most once a second) or when it exits. A session that loads a table and ANALYZEs it
before its counters flush makes the load arrive *after* the ANALYZE reset the counter: the table looks
100 % changed the moment it was analyzed. So the count is cross-checked against what the ANALYZE itself
saw: ``pg_class.reltuples`` and ``relpages`` are the rows and pages ANALYZE measured (when no VACUUM ran
since, which would overwrite them). ``n_live_tup`` cannot serve: the late flush adds the load to it too.
The table's size can: rows inserted since the ANALYZE had to go into new pages, so they number at most
``reltuples × (pages now / relpages − 1)`` — the planner's own way of scaling ``reltuples`` — and updates
and deletes since number at most ``n_tup_upd + n_tup_del``. Changes counted beyond those two bounds are
the pre-ANALYZE load flushing late and are not reported. (A load and an UPDATE of the same rows before
the ANALYZE, all in one session, still over-counts by the updates; the bound is honest, not exact.)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pgpulse.doctor.check import Context, Finding, Severity, qualified

MIN_CHANGES = 1_000
CHANGED_FRACTION = 0.2

SQL = """
SELECT s.schemaname, s.relname AS table_name, s.n_live_tup, s.n_mod_since_analyze,
       s.n_tup_upd + s.n_tup_del AS updates_and_deletes, c.reltuples, c.relpages,
       pg_relation_size(c.oid) / current_setting('block_size')::int AS pages_now,
       GREATEST(s.last_analyze, s.last_autoanalyze) AS analyzed_at,
       GREATEST(s.last_vacuum, s.last_autovacuum) AS vacuumed_at
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE s.n_mod_since_analyze >= $1
ORDER BY s.n_mod_since_analyze DESC
"""


def changes_since_analyze(row: Mapping[str, Any]) -> int:
    """``n_mod_since_analyze`` less what cannot have happened after the ANALYZE (see the module docstring)."""
    counted = int(row["n_mod_since_analyze"])
    analyzed: datetime | None = row["analyzed_at"]
    vacuumed: datetime | None = row["vacuumed_at"]
    if analyzed is None or (vacuumed is not None and vacuumed > analyzed):
        return counted  # reltuples is not the ANALYZE's count: nothing to cross-check against
    if row["relpages"] > 0:
        growth = max(0, int(row["reltuples"] * (row["pages_now"] / row["relpages"] - 1)))
    else:  # analyzed while empty: every live row came after
        growth = int(row["n_live_tup"])
    rewrites = min(counted, int(row["updates_and_deletes"]))
    return min(counted, growth + rewrites)


class StaleStatisticsCheck:
    name = "stale_statistics"
    title = "Stale planner statistics"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for record in await ctx.conn.fetch(SQL, MIN_CHANGES):
            row = record
            table = qualified(row["schemaname"], row["table_name"])
            never = row["analyzed_at"] is None
            changed = changes_since_analyze(row)
            live = max(row["n_live_tup"], 1)
            if changed < MIN_CHANGES or (not never and changed < CHANGED_FRACTION * live):
                continue
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"table {table}",
                    title=(
                        f"{table} has never been analyzed ({changed:,} rows changed)"
                        if never
                        else f"{table} changed {changed:,} rows ({changed / live:.0%}) since its last ANALYZE"
                    ),
                    evidence={
                        "changed_since_analyze": changed,
                        "n_mod_since_analyze": row["n_mod_since_analyze"],
                        "n_live_tup": row["n_live_tup"],
                        "reltuples": int(row["reltuples"]),
                        "last_analyze": row["analyzed_at"],
                    },
                    fix=f"ANALYZE {table};",
                    note="Plans are chosen from these statistics; run ANALYZE after bulk loads.",
                )
            )
        return findings
