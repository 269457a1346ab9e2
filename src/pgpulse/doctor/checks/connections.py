"""Connections: headroom under max_connections, sessions idle in a transaction, queries running for ages,
and whether the application's pools can fit at all (W workers × (pool_size + max_overflow)).

Every PostgreSQL connection is a process with its own memory; running out means new requests fail with
"too many clients". Pools multiply: 8 workers with pool_size=10 and max_overflow=20 can open 240.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pgpulse.doctor.check import Context, Finding, Severity

USAGE_WARN = 0.8
IDLE_TX_SECONDS = 60
LONG_QUERY_SECONDS = 300

LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use
"""
SESSIONS = """
SELECT pid, usename, application_name, state,
       EXTRACT(EPOCH FROM now() - state_change)::float AS state_seconds,
       EXTRACT(EPOCH FROM now() - query_start)::float AS query_seconds,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND ((state IN ('idle in transaction', 'idle in transaction (aborted)')
        AND now() - state_change > make_interval(secs => $1))
    OR (state = 'active' AND now() - query_start > make_interval(secs => $2)))
ORDER BY query_start
"""


@dataclass
class ConnectionsCheck:
    idle_tx_seconds: float = IDLE_TX_SECONDS
    long_query_seconds: float = LONG_QUERY_SECONDS
    name: ClassVar[str] = "connections"
    title: ClassVar[str] = "Connections and pool sizing"

    async def run(self, ctx: Context) -> list[Finding]:
        limits = await ctx.conn.fetchrow(LIMITS)
        usable = limits["max_connections"] - limits["reserved"]
        in_use = limits["in_use"]
        evidence = {
            "in_use": in_use,
            "max_connections": limits["max_connections"],
            "reserved": limits["reserved"],
        }
        findings = []
        if in_use >= usable * USAGE_WARN:
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.critical if in_use >= usable else Severity.warning,
                    object="server",
                    title=f"{in_use} of {usable} usable connections in use ({in_use / usable:.0%})",
                    evidence=evidence,
                    fix="Put PgBouncer (transaction mode) in front, or shrink the application pools.",
                )
            )
        for row in await ctx.conn.fetch(SESSIONS, self.idle_tx_seconds, self.long_query_seconds):
            idle = row["state"] != "active"
            seconds = row["state_seconds"] if idle else row["query_seconds"]
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"backend {row['pid']}",
                    title=(
                        f"session {row['pid']} ({row['usename']}, {row['application_name'] or 'no app name'}) "
                        + (
                            f"idle in transaction for {seconds:,.0f} s"
                            if idle
                            else f"running one query for {seconds:,.0f} s"
                        )
                    ),
                    evidence={"state": row["state"], "seconds": round(seconds, 1), "query": row["query"]},
                    fix=f"SELECT pg_terminate_backend({row['pid']});  -- after checking what it is"
                    + ("\nALTER SYSTEM SET idle_in_transaction_session_timeout = '60s';" if idle else ""),
                    note="Idle transactions hold locks and the vacuum horizon; find the code path that "
                    "forgets to commit (a session held across an await on something slow)."
                    if idle
                    else None,
                )
            )
        opts = ctx.options
        if opts.app_workers is not None and opts.pool_size is not None:
            overflow = opts.max_overflow or 0
            demand = opts.app_workers * (opts.pool_size + overflow)
            if demand > usable * USAGE_WARN:
                per_worker = max(1, int(usable * USAGE_WARN) // opts.app_workers)
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.critical if demand > usable else Severity.warning,
                        object="application pools",
                        title=f"{opts.app_workers} workers × (pool_size {opts.pool_size} + max_overflow {overflow})"
                        f" = {demand} connections vs {usable} usable"
                        + (": the pools cannot all fill" if demand > usable else ": little headroom left"),
                        evidence={**evidence, "demand": demand, "usable": usable},
                        fix=f"Keep pool_size + max_overflow ≤ {per_worker} per worker, or put PgBouncer in front "
                        "(transaction mode; set PGPULSE_PGBOUNCER=true so asyncpg stops preparing statements).",
                        note="Under load every pool grows to pool_size + max_overflow; the excess gets "
                        "'too many clients' errors instead of queueing.",
                    )
                )
        return findings
