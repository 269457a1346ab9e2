"""Top queries from pg_stat_statements: where the database time goes, by total, by mean and by calls.

Total time finds what to optimise first; mean time finds the slow endpoint; calls finds the N+1 and the
chatty ORM. Texts are normalized by PostgreSQL itself ($1 placeholders), so no parameter values appear.
When the extension is missing we say how to enable it and the other checks go on.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity

TOP = 5
SLOW_MEAN_MS = 100.0

SQL = """
SELECT queryid, query, calls, total_exec_time, mean_exec_time, rows,
       shared_blks_hit, shared_blks_read
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query !~* $2
  AND query !~* $3
ORDER BY {order} DESC
LIMIT $1
"""
# Not the application's workload: transaction control, maintenance and DDL, and catalog/monitoring queries
# (ours included, when the role may not switch tracking off for its own session).
UTILITY = (
    r"^\s*(begin|commit|rollback|savepoint|release|set|show|reset|discard|deallocate|copy|create|alter|drop"
    r"|analyze|vacuum|truncate|grant|revoke|listen|notify)\M"
)
CATALOG = r"\m(pg_catalog|pg_stat_\w+|pg_class|pg_index|pg_settings|pg_namespace|pg_extension|pgstat\w+|set_config)\M"
ORDERS = {"total time": "total_exec_time", "mean time": "mean_exec_time", "calls": "calls"}


class NotAvailable(Exception):
    pass


class TopQueriesCheck:
    name = "top_queries"
    title = "Top queries (pg_stat_statements)"

    async def run(self, ctx: Context) -> list[Finding]:
        if "pg_stat_statements" not in ctx.extensions:
            if "pg_stat_statements" in ctx.preload_libraries:
                fix = "CREATE EXTENSION pg_stat_statements;"
                how = "the library is preloaded; create the extension in this database"
            else:
                fix = (
                    "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';  -- then restart\n"
                    "CREATE EXTENSION pg_stat_statements;"
                )
                how = "add it to shared_preload_libraries, restart, then create the extension"
            return [
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object="extension pg_stat_statements",
                    title="pg_stat_statements is not enabled: there is no record of which queries cost what",
                    evidence={"installed_extensions": sorted(ctx.extensions)},
                    fix=fix,
                    note=how,
                )
            ]
        findings: list[Finding] = []
        seen: dict[int, Finding] = {}
        for label, column in ORDERS.items():
            for rank, row in enumerate(await ctx.conn.fetch(SQL.format(order=column), TOP, UTILITY, CATALOG), 1):
                existing = seen.get(row["queryid"])
                if existing is not None:
                    existing.evidence["ranks"].append(f"#{rank} by {label}")
                    continue
                blocks = row["shared_blks_hit"] + row["shared_blks_read"]
                mean = row["mean_exec_time"]
                finding = Finding(
                    check=self.name,
                    severity=Severity.warning if mean >= SLOW_MEAN_MS else Severity.info,
                    object=f"query {row['queryid']}",
                    title=f"{' '.join(row['query'].split())[:160]}",
                    evidence={
                        "ranks": [f"#{rank} by {label}"],
                        "calls": row["calls"],
                        "total_ms": round(row["total_exec_time"], 1),
                        "mean_ms": round(mean, 3),
                        "rows_per_call": round(row["rows"] / max(row["calls"], 1), 1),
                        "cache_hit": round(row["shared_blks_hit"] / blocks, 4) if blocks else None,
                        "query": " ".join(row["query"].split()),
                    },
                    fix=f'pgpulse advise "$DATABASE_URL" --queryid {row["queryid"]}' if mean >= SLOW_MEAN_MS else None,
                )
                seen[row["queryid"]] = finding
                findings.append(finding)
        return findings
