"""Connection churn: an application that opens a new PostgreSQL session per request (no pool).

Every session costs a fork and an authentication before its first query: about 9 ms on this project's
2-core machines, the time of ~100 queries on an open connection (more with TLS and SCRAM). SQLAlchemy's
``NullPool``, a script run per request, a serverless function, or a pool too small for its load (its
``max_overflow`` connections are opened and closed on every burst) all pay it per unit of work. A pooled
application has few sessions that live for minutes or hours.

The evidence is the current database's row of ``pg_stat_database`` (PostgreSQL 14+): ``sessions`` started
and ``session_time`` spent in them over the statistics window, which runs from ``stats_reset`` or, when
the statistics were never reset, from ``pg_postmaster_start_time()``. Three numbers decide:

* ``MIN_SESSIONS`` (1,000) sessions in the window. This is the evidence bar, in place of a minimum window
  length: a window only turns sessions into a rate, and a thousand short sessions that happened are not
  made less real by a short window. Pools do not get there: even 100 processes × pool_size 10 open 1,000
  once, and those stay open. A fresh server, a test database or an admin's handful of psql sessions stay
  far below it.
* ``MIN_SESSIONS_PER_SECOND`` (1.0) on average over the window: below that the server forks less than
  once a second, under 1 % of one core at 9 ms each (a cron job, a monitoring agent scraping every 15 s).
* ``MAX_MEAN_SESSION_SECONDS`` (1.0): ``session_time / sessions``. A pooled connection lives far longer;
  a session that lasts under a second on average was opened for one unit of work. This one needs no
  window at all.

All three: a warning. Enough sessions at the rate but a mean of a second or more: info — short sessions
hidden behind long ones (a pooled application plus a client that connects per request, a health check
connecting every second, a pool that keeps reconnecting). By Little's law rate × mean is the average number
of open sessions, so a high rate cannot hide behind an arbitrarily long mean. Short sessions at a low rate
are not reported: their cost is negligible.

Caveats, said in the evidence: ``session_time`` of a session still open counts up to its last statistics
flush (at most a second behind while it works, idle ones later), and since PostgreSQL 15 the counters of a
database never reset survive clean restarts, so the window since the server's start can be shorter than
what they cover and the rate an overestimate; the mean duration does not depend on the window. The
connect time reported is ``sessions × CONNECT_COST_SECONDS``: an estimate, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pgpulse.doctor.check import SQLALCHEMY_MAX_OVERFLOW, Context, Finding, Severity, SkipCheck

MIN_SERVER_VERSION = 140000  # pg_stat_database.sessions and session_time
MIN_SESSIONS = 1_000
MIN_SESSIONS_PER_SECOND = 1.0
MAX_MEAN_SESSION_SECONDS = 1.0
CONNECT_COST_SECONDS = 0.009  # fork + authentication, measured on this project's machines (ARCHITECTURE.md)
ABANDONED_NOTABLE = 0.01  # sessions ended without a Terminate message, as a fraction of all
SQLALCHEMY_POOL_SIZE = 5  # QueuePool's default

SQL = """
SELECT d.sessions, d.session_time, d.active_time, d.idle_in_transaction_time,
       d.sessions_abandoned, d.sessions_fatal, d.sessions_killed,
       d.xact_commit + d.xact_rollback AS transactions,
       d.stats_reset IS NOT NULL AS since_reset,
       EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(d.stats_reset, pg_postmaster_start_time()))::float
         AS window_seconds
FROM pg_stat_database d
WHERE d.datname = current_database()
"""

FIX = "\n".join(
    (
        "# SQLAlchemy: one engine per process, created at start-up and shared by every request. Its default pool",
        "# (QueuePool; AsyncAdaptedQueuePool under asyncio) keeps connections open; NullPool opens one per checkout.",
        f"engine = create_async_engine(url, pool_size={SQLALCHEMY_POOL_SIZE}, max_overflow={SQLALCHEMY_MAX_OVERFLOW}, "
        "pool_pre_ping=True)",
        "# Size the pools against max_connections: pgpulse doctor --app-workers W --pool-size P --max-overflow O",
        "# Many processes or serverless functions: PgBouncer in transaction mode (pool_mode = transaction) in front,",
        "# the application connecting to PgBouncer (NullPool is fine there: no fork per connection). asyncpg behind",
        "# PgBouncer < 1.21 must not keep prepared statements:",
        "engine = create_async_engine(pgbouncer_url, poolclass=NullPool, "
        'connect_args={"statement_cache_size": 0, "prepared_statement_cache_size": 0})',
    )
)


@dataclass
class ConnectionChurnCheck:
    min_sessions: int = MIN_SESSIONS
    min_sessions_per_second: float = MIN_SESSIONS_PER_SECOND
    max_mean_session_seconds: float = MAX_MEAN_SESSION_SECONDS
    name: ClassVar[str] = "connection_churn"
    title: ClassVar[str] = "Connection churn (a new session per request)"

    async def run(self, ctx: Context) -> list[Finding]:
        if ctx.server_version < MIN_SERVER_VERSION:
            major = ctx.server_version // 10000
            raise SkipCheck(f"needs PostgreSQL 14 or later (pg_stat_database.sessions); this server is {major}")
        row = await ctx.conn.fetchrow(SQL)
        if row is None:  # no statistics entry for this database yet
            return []
        sessions = int(row["sessions"])
        window = max(float(row["window_seconds"]), 0.001)
        rate = sessions / window
        if sessions < self.min_sessions or rate < self.min_sessions_per_second:
            return []
        mean_seconds = float(row["session_time"]) / 1000 / sessions
        transactions = int(row["transactions"])
        abandoned = int(row["sessions_abandoned"])
        since = "the statistics reset" if row["since_reset"] else "the server started"
        per_second = round(rate, 1)
        mean_ms = round(mean_seconds * 1000, 1)
        evidence = {
            "sessions": sessions,
            "window_seconds": round(window),
            "window_since": "stats_reset" if row["since_reset"] else "server start (statistics never reset)",
            "sessions_per_second": per_second,
            "mean_session_ms": mean_ms,
            "transactions": transactions,
            "sessions_per_transaction": round(sessions / max(transactions, 1), 3),
            "connect_seconds_estimate": round(sessions * CONNECT_COST_SECONDS, 1),
            "connect_cost_ms_assumed": CONNECT_COST_SECONDS * 1000,
            "sessions_abandoned": abandoned,
            "sessions_fatal": int(row["sessions_fatal"]),
            "sessions_killed": int(row["sessions_killed"]),
        }
        note = (
            f"Each new session forks a backend and authenticates: about {CONNECT_COST_SECONDS * 1000:g} ms, "
            f"so roughly {evidence['connect_seconds_estimate']:,} s went to connecting alone (an estimate: "
            "sessions × that cost)."
        )
        if abandoned >= ABANDONED_NOTABLE * sessions:
            note += (
                f" {abandoned:,} sessions ({abandoned / sessions:.0%}) ended without a Terminate message: "
                "clients that exit or are killed without closing, typical of short-lived processes."
            )
        if mean_seconds < self.max_mean_session_seconds:
            severity = Severity.warning
            title = (
                f"{sessions:,} sessions since {since}, {per_second:,} a second, lasting {mean_ms:,} ms on "
                "average: the application opens a connection per request instead of using a pool"
            )
        else:
            severity = Severity.info
            title = (
                f"{sessions:,} sessions since {since}, {per_second:,} a second, though the mean session lasts "
                f"{mean_seconds:,.1f} s: some client connects per unit of work beside long-lived sessions"
            )
            note += " A pool that keeps reconnecting (pool_recycle, connections cut by a proxy) looks the same."
        return [
            Finding(
                check=self.name,
                severity=severity,
                object=f"database {ctx.database}",
                title=title,
                evidence=evidence,
                fix=FIX,
                note=note,
            )
        ]
