"""Connections: headroom under max_connections (and the database's own CONNECTION LIMIT), sessions idle in
a transaction, and whether the application's pools can fit at all (W workers × (pool_size + max_overflow)).

Every PostgreSQL connection is a process with its own memory; running out means new requests fail with
"too many clients". Pools multiply: 8 workers with pool_size=10 and max_overflow=20 can open 240.

Thresholds: connections in use at ``USAGE_WARN`` (80 %) of the usable slots (max_connections less the
reserved ones, or the database's ``CONNECTION LIMIT`` when lower) is a warning, 100 % critical; the same
rule for the pools' peak demand. ``max_overflow`` not given means SQLAlchemy's default (10): that is what
the pools grow to under load. A session idle in a transaction for ``--idle-in-transaction-seconds``
(60 s) is a warning: it holds its locks and the vacuum horizon.
"""

from __future__ import annotations

from pgpulse.doctor.check import SQLALCHEMY_MAX_OVERFLOW, Context, Finding, Severity
from pgpulse.sql import redact_sql

USAGE_WARN = 0.8

LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
         + COALESCE(current_setting('reserved_connections', true)::int, 0) AS reserved,
       (SELECT datconnlimit FROM pg_database WHERE datname = current_database()) AS database_limit,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use,
       (SELECT count(*) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND datname = current_database()) AS in_database
"""
IDLE_IN_TRANSACTION = """
SELECT pid, usename, application_name, state,
       EXTRACT(EPOCH FROM now() - state_change)::float AS seconds, query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = current_database()
  AND state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND now() - state_change > make_interval(secs => $1)
ORDER BY state_change
"""


def query_shape(text: str | None) -> str:
    """What a session runs, literals replaced and whitespace folded: its shape, never its parameters."""
    return " ".join(redact_sql(text or "").split())[:300]


class ConnectionsCheck:
    name = "connections"
    title = "Connections and pool sizing"

    async def run(self, ctx: Context) -> list[Finding]:
        limits = await ctx.conn.fetchrow(LIMITS)
        server_usable = limits["max_connections"] - limits["reserved"]
        database_limit = limits["database_limit"]
        limited_by_database = 0 <= database_limit < server_usable
        usable = database_limit if limited_by_database else server_usable
        in_use = limits["in_database"] if limited_by_database else limits["in_use"]
        evidence = {
            "in_use": limits["in_use"],
            "in_this_database": limits["in_database"],
            "max_connections": limits["max_connections"],
            "reserved": limits["reserved"],
            "database_connection_limit": database_limit,
        }
        where = f"database {ctx.database}'s CONNECTION LIMIT" if limited_by_database else "the server"
        findings = []
        if in_use >= usable * USAGE_WARN:
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.critical if in_use >= usable else Severity.warning,
                    object=f"database {ctx.database}" if limited_by_database else "server",
                    title=f"{in_use} of {usable} usable connections in use ({in_use / max(usable, 1):.0%}) "
                    f"under {where}",
                    evidence=evidence,
                    fix="Put PgBouncer (transaction mode) in front, or shrink the application pools.",
                )
            )
        for row in await ctx.conn.fetch(IDLE_IN_TRANSACTION, ctx.options.idle_in_transaction_seconds):
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"backend {row['pid']}",
                    title=f"session {row['pid']} ({row['usename']}, {row['application_name'] or 'no app name'}) "
                    f"idle in transaction for {row['seconds']:,.0f} s",
                    evidence={
                        "state": row["state"],
                        "seconds": round(row["seconds"], 1),
                        "last_query": query_shape(row["query"]),
                    },
                    fix=f"SELECT pg_terminate_backend({row['pid']});  -- after checking what it is\n"
                    "ALTER SYSTEM SET idle_in_transaction_session_timeout = '60s';\nSELECT pg_reload_conf();",
                    note="Idle transactions hold locks and the vacuum horizon; find the code path that "
                    "forgets to commit (a session held across an await on something slow).",
                )
            )
        pools = self._pools(ctx, usable, where, evidence)
        if pools is not None:
            findings.append(pools)
        return findings

    def _pools(self, ctx: Context, usable: int, where: str, evidence: dict[str, int]) -> Finding | None:
        opts = ctx.options
        if opts.app_workers is None or opts.pool_size is None:
            return None
        overflow = SQLALCHEMY_MAX_OVERFLOW if opts.max_overflow is None else opts.max_overflow
        demand = opts.app_workers * (opts.pool_size + overflow)
        if demand <= usable * USAGE_WARN:
            return None
        per_worker = max(1, int(usable * USAGE_WARN) // opts.app_workers)
        overflow_said = "" if opts.max_overflow is not None else " (SQLAlchemy's default; pass --max-overflow)"
        return Finding(
            check=self.name,
            severity=Severity.critical if demand > usable else Severity.warning,
            object="application pools",
            title=f"{opts.app_workers} workers × (pool_size {opts.pool_size} + max_overflow {overflow}{overflow_said})"
            f" = {demand} connections vs {usable} usable under {where}"
            + (": the pools cannot all fill" if demand > usable else ": little headroom left"),
            evidence={**evidence, "demand": demand, "usable": usable},
            fix=f"Keep pool_size + max_overflow ≤ {per_worker} per worker, or put PgBouncer in front "
            "(transaction mode; set PGPULSE_PGBOUNCER=true so asyncpg stops preparing statements).",
            note="Under load every pool grows to pool_size + max_overflow; the excess gets "
            "'too many clients' errors instead of queueing.",
        )
