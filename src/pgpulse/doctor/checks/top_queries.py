"""Top queries from pg_stat_statements: where the database time goes, by total, by mean and by calls.

Total time finds what to optimise first; mean time finds the slow endpoint; calls finds the N+1 and the
chatty ORM. Texts are normalized by PostgreSQL itself ($1 placeholders), but pg_stat_statements keeps the
comments (``/* token=… */``, sqlcommenter tags) and any constant it does not normalize, so each text goes through
:func:`pgpulse.sql.redact_sql` before it is shown.
When the extension is missing we say how to enable it and the other checks go on.

Thresholds (PgHero's ``slow_query_calls`` / ``slow_query_ms``, plus a share rule): a query is a **warning**
only when it is a recurring workload — at least ``MIN_CALLS`` (100) calls — and either its mean is at least
``SLOW_MEAN_MS`` (20 ms), or it is at least ``SHARE_MEAN_MS`` (5 ms) per call and takes at least
``TIME_SHARE`` (20 %) of this database's statement time. Everything else in the top lists is **info**: a
one-off bulk statement (``INSERT … SELECT generate_series``, a migration, a report run once) is slow by
nature and nothing to index. Only a warning on a read or a targeted write (SELECT/WITH/UPDATE/DELETE)
points to ``pgpulse advise``; an INSERT never does (an index cannot speed up the rows it writes).
"""

from __future__ import annotations

import re

from pgpulse.doctor.check import Context, Finding, Severity
from pgpulse.sql import redact_sql

TOP = 5
MIN_CALLS = 100
SLOW_MEAN_MS = 20.0
SHARE_MEAN_MS = 5.0
TIME_SHARE = 0.20

FILTER = """
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query !~* $1
  AND query !~* $2
"""
SQL = (
    """
SELECT queryid, query, calls, total_exec_time, mean_exec_time, rows,
       shared_blks_hit, shared_blks_read
FROM pg_stat_statements"""
    + FILTER
    + """ORDER BY {order} DESC
LIMIT $3
"""
)
TOTAL = "SELECT COALESCE(sum(total_exec_time), 0)::float AS total FROM pg_stat_statements" + FILTER
# Not the application's workload: transaction control, maintenance and DDL, and catalog/monitoring queries
# (ours included, when the role may not switch tracking off for its own session).
UTILITY = (
    r"^\s*(begin|commit|rollback|savepoint|release|set|show|reset|discard|deallocate|copy|create|alter|drop"
    r"|analyze|vacuum|truncate|grant|revoke|listen|notify|refresh|reindex|cluster|comment|lock|do|call)\M"
)
CATALOG = r"\m(pg_catalog|pg_stat_\w+|pg_class|pg_index|pg_settings|pg_namespace|pg_extension|pgstat\w+|set_config)\M"
ORDERS = {"total time": "total_exec_time", "mean time": "mean_exec_time", "calls": "calls"}
ADVISABLE = re.compile(r"^\s*(select|with|update|delete)\b", re.IGNORECASE)


def is_slow(calls: int, mean_ms: float, share: float) -> bool:
    """The warning rule from the module docstring (kept separate so the thresholds read as one sentence)."""
    if calls < MIN_CALLS:
        return False
    return mean_ms >= SLOW_MEAN_MS or (mean_ms >= SHARE_MEAN_MS and share >= TIME_SHARE)


class TopQueriesCheck:
    name = "top_queries"
    title = "Top queries (pg_stat_statements)"

    async def run(self, ctx: Context) -> list[Finding]:
        if "pg_stat_statements" not in ctx.extensions:
            return [self._not_enabled(ctx)]
        total = float(await ctx.conn.fetchval(TOTAL, UTILITY, CATALOG)) or 1.0
        findings: list[Finding] = []
        seen: dict[int, Finding] = {}
        for label, column in ORDERS.items():
            for rank, row in enumerate(await ctx.conn.fetch(SQL.format(order=column), UTILITY, CATALOG, TOP), 1):
                existing = seen.get(row["queryid"])
                if existing is not None:
                    existing.evidence["ranks"].append(f"#{rank} by {label}")
                    continue
                blocks = row["shared_blks_hit"] + row["shared_blks_read"]
                mean = row["mean_exec_time"]
                share = row["total_exec_time"] / total
                query = " ".join(redact_sql(row["query"]).split())
                slow = is_slow(row["calls"], mean, share)
                finding = Finding(
                    check=self.name,
                    severity=Severity.warning if slow else Severity.info,
                    object=f"query {row['queryid']}",
                    title=query[:160],
                    evidence={
                        "ranks": [f"#{rank} by {label}"],
                        "calls": row["calls"],
                        "total_ms": round(row["total_exec_time"], 1),
                        "mean_ms": round(mean, 3),
                        "share_of_time": round(share, 3),
                        "rows_per_call": round(row["rows"] / max(row["calls"], 1), 1),
                        "cache_hit": round(row["shared_blks_hit"] / blocks, 4) if blocks else None,
                        "query": query,
                    },
                    fix=f'pgpulse advise "$DATABASE_URL" --queryid {row["queryid"]}'
                    if slow and ADVISABLE.match(query)
                    else None,
                    note=None
                    if slow or row["calls"] >= MIN_CALLS
                    else f"{row['calls']} call(s): a one-off statement, not a recurring workload",
                )
                seen[row["queryid"]] = finding
                findings.append(finding)
        return findings

    def _not_enabled(self, ctx: Context) -> Finding:
        if "pg_stat_statements" in ctx.preload_libraries:
            fix = "CREATE EXTENSION pg_stat_statements;"
            how = "the library is preloaded; create the extension in this database"
        else:
            fix = (
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';  -- then restart\n"
                "CREATE EXTENSION pg_stat_statements;"
            )
            how = "add it to shared_preload_libraries, restart, then create the extension"
        return Finding(
            check=self.name,
            severity=Severity.warning,
            object="extension pg_stat_statements",
            title="pg_stat_statements is not enabled: there is no record of which queries cost what",
            evidence={"installed_extensions": sorted(ctx.extensions)},
            fix=fix,
            note=how,
        )
