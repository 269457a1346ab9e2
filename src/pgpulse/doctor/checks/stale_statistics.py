"""Stale statistics: tables changed a lot since the planner last sampled them (or never sampled).

The planner picks plans from ``pg_statistic``; after a bulk load or a wave of updates it still plans for
the old data (an empty table, a uniform column) and picks nested loops over millions of rows. ANALYZE is
cheap: it reads a sample. Run it after every bulk load.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity, qualified

MIN_CHANGES = 1_000
CHANGED_FRACTION = 0.2

SQL = """
SELECT schemaname, relname AS table_name, n_live_tup, n_mod_since_analyze,
       GREATEST(last_analyze, last_autoanalyze) AS analyzed_at
FROM pg_stat_user_tables
WHERE n_mod_since_analyze >= $1
  AND (n_mod_since_analyze >= $2 * GREATEST(n_live_tup, 1)
       OR (last_analyze IS NULL AND last_autoanalyze IS NULL))
ORDER BY n_mod_since_analyze DESC
"""


class StaleStatisticsCheck:
    name = "stale_statistics"
    title = "Stale planner statistics"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL, MIN_CHANGES, CHANGED_FRACTION):
            table = qualified(row["schemaname"], row["table_name"])
            never = row["analyzed_at"] is None
            changed = row["n_mod_since_analyze"]
            live = max(row["n_live_tup"], 1)
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
                        "n_mod_since_analyze": changed,
                        "n_live_tup": row["n_live_tup"],
                        "last_analyze": row["analyzed_at"],
                    },
                    fix=f"ANALYZE {table};",
                    note="Plans are chosen from these statistics; run ANALYZE after bulk loads.",
                )
            )
        return findings
