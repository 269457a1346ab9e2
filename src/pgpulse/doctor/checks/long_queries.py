"""Long-running queries: statements active for longer than ``--long-query-seconds`` (60 s, PgHero's
``long_running_query_sec``) in this database.

A query running for minutes holds its snapshot (vacuum cannot remove rows dead since it began), its locks
(an ALTER TABLE queues behind it, and every query after the ALTER queues behind that) and a connection.
Autovacuum workers and WAL senders are not client backends and are not reported. The statement is shown
by its shape (literals replaced), never with its parameters.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity
from pgpulse.doctor.checks.connections import query_shape

SQL = """
SELECT pid, usename, application_name, wait_event_type, wait_event,
       EXTRACT(EPOCH FROM now() - query_start)::float AS seconds, query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = current_database()
  AND state = 'active' AND now() - query_start > make_interval(secs => $1)
ORDER BY query_start
"""


class LongQueriesCheck:
    name = "long_queries"
    title = "Long-running queries"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL, ctx.options.long_query_seconds):
            waiting = f"{row['wait_event_type']}:{row['wait_event']}" if row["wait_event_type"] else None
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"backend {row['pid']}",
                    title=f"session {row['pid']} ({row['usename']}, {row['application_name'] or 'no app name'}) "
                    f"has been running one query for {row['seconds']:,.0f} s",
                    evidence={
                        "seconds": round(row["seconds"], 1),
                        "threshold_seconds": ctx.options.long_query_seconds,
                        "waiting_on": waiting,
                        "query": query_shape(row["query"]),
                    },
                    fix=f"SELECT pg_cancel_backend({row['pid']});  -- after checking what it is "
                    "(pg_terminate_backend if cancel is not enough)",
                    note="Cap runaway statements per application role: ALTER ROLE … SET statement_timeout.",
                )
            )
        return findings
