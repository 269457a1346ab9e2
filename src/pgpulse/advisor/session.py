"""One advisor run against a database: read the workload, then advise on it in one read-only session.

This is what ``pgpulse advise`` runs (the command only parses flags and prints); a program can call
:func:`advise_database` with the same explicit options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from pgpulse.advisor.advise import Advice, Advisor, Options
from pgpulse.advisor.verify import Method, Verifier, VerifyError
from pgpulse.advisor.workload import (
    Source,
    WorkloadError,
    WorkloadQuery,
    filter_tables,
    from_file,
    from_logs,
    from_pg_stat_activity,
    from_pg_stat_statements,
    from_text,
)
from pgpulse.doctor.runner import connect

# How long the pg_stat_statements figures cover: since its last reset (PostgreSQL 14+), so savings are per hour.
WINDOW_SQL = "SELECT extract(epoch FROM now() - stats_reset) / 3600 FROM pg_stat_statements_info"
LOCK_TIMEOUT = "1s"  # a table another session holds locked becomes a "table locked" verdict after this long


def _quiet(message: str) -> None:
    """Default progress and warning sink: say nothing."""


@dataclass
class WorkloadSource:
    """Where the workload comes from: exactly one of these, else pg_stat_statements."""

    queries: list[str]
    file: Path | None
    logs: list[Path]
    queryid: int | None
    given: list[WorkloadQuery] | None  # already read (standard input)
    activity_seconds: float | None


@dataclass
class WorkloadFilters:
    """Which of the workload's queries to advise on."""

    top: int
    min_calls: int
    min_time: float
    include: list[str]
    exclude: list[str]


async def advise_database(
    url: str,
    options: Options,
    source: WorkloadSource,
    filters: WorkloadFilters,
    *,
    allow_build: bool = False,
    step: Callable[[str], None] = _quiet,
    warn: Callable[[str], None] = _quiet,
) -> Advice:
    """Read the workload (``source``, else pg_stat_statements), keep what ``filters`` select, and advise on it in
    one read-only session. Raises :class:`WorkloadError` when nothing is left to advise on, ``ConnectError`` when
    the database cannot be reached, :class:`VerifyError` when the session is not read-only."""
    workload: list[WorkloadQuery] = []
    if source.queries:
        workload = from_text(source.queries, Source.argument)
    elif source.file is not None:
        workload = from_file(source.file)
    elif source.given is not None:
        workload = source.given
    elif source.logs:
        workload = from_logs(source.logs, filters.top, filters.min_calls)
    from_server = not (source.queries or source.file or source.given is not None or source.logs)
    # A read-only session (default_transaction_read_only), with a lock_timeout: a table another session holds
    # under ACCESS EXCLUSIVE becomes that query's verdict ("table locked") instead of a hang.
    conn, _ = await connect(url)
    try:
        # Costing and rolled-back builds of large tables take longer than the doctor's 10 s limit; a lock wait
        # does not (explicit here: the advisor's guarantees do not rest on another command's defaults).
        await conn.execute("SET statement_timeout = '10min'")
        await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        if await conn.fetchval("SHOW default_transaction_read_only") != "on":
            raise VerifyError("the session did not start read-only (default_transaction_read_only): refusing")
        if from_server and source.activity_seconds is not None:
            step(f"sampling pg_stat_activity for {source.activity_seconds:g} s")
            workload = await from_pg_stat_activity(conn, source.activity_seconds, limit=filters.top)
            workload = [q for q in workload if q.calls >= filters.min_calls]
            options.window_hours = source.activity_seconds / 3600
        elif from_server:
            workload = await from_pg_stat_statements(
                conn, filters.top, filters.min_calls, source.queryid, warn, filters.min_time
            )
            try:
                hours = await conn.fetchval(WINDOW_SQL)
            except asyncpg.PostgresError:  # before PostgreSQL 14: no pg_stat_statements_info
                hours = None
            options.window_hours = float(hours) if hours else None
        if filters.min_time and (from_server or source.logs):  # only these sources carry observed times
            workload = [q for q in workload if q.total_ms >= filters.min_time]
        if filters.include or filters.exclude:
            workload = filter_tables(workload, filters.include, filters.exclude)
        if not workload:
            raise WorkloadError(
                "no queries to advise on (pg_stat_statements empty for this database, or every query filtered out?)"
            )
        step(f"read {len(workload)} quer{'y' if len(workload) == 1 else 'ies'}")
        verifier = await Verifier.create(conn, allow_build, step)
        return await Advisor(conn, verifier, options, step).run(workload)
    finally:
        await conn.close()


async def measure_after(url: str, advice: Advice, created: set[int]) -> None:
    """With the indexes really there, time each query they serve again (same representative values, same
    rolled-back READ ONLY transaction; only statements --measure already found safe to run)."""
    conn, _ = await connect(url)
    try:
        await conn.execute("SET statement_timeout = '10min'")
        verifier = Verifier(conn, Method.applied, 0)
        for i, rec in enumerate(advice.recommendations):
            if i not in created:
                continue
            for verdict in rec.verdicts:
                if verdict.statement is not None:
                    try:
                        verdict.measured_after_ms = await verifier.measure(verdict.statement)
                    except asyncpg.PostgresError as exc:
                        verdict.not_measured = f"measuring after --apply failed: {type(exc).__name__}"
    finally:
        await conn.close()
