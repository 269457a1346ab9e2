"""``pgpulse advise [DATABASE_URL]``: verified CREATE INDEX statements for the slow queries of a workload."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape

from pgpulse.advisor.advise import Advice, Advisor, Options
from pgpulse.advisor.apply import Applied, apply
from pgpulse.advisor.report import render_json, render_markdown, render_table
from pgpulse.advisor.verify import Verifier, VerifyError
from pgpulse.advisor.workload import (
    WorkloadError,
    WorkloadQuery,
    filter_tables,
    from_file,
    from_logs,
    from_pg_stat_activity,
    from_pg_stat_statements,
    from_stdin,
    from_text,
)
from pgpulse.db.resolve import resolve_or_fail
from pgpulse.db.urls import libpq_url, redact
from pgpulse.doctor.runner import ConnectError, connect
from pgpulse.errors import fail
from pgpulse.formats import Format, emit
from pgpulse.sql import redact_text

# How long the pg_stat_statements figures cover: since its last reset (PostgreSQL 14+), so savings are per hour.
WINDOW_SQL = "SELECT extract(epoch FROM now() - stats_reset) / 3600 FROM pg_stat_statements_info"
LOCK_TIMEOUT = "1s"  # a table another session holds locked becomes a "table locked" verdict after this long


def advise(
    database_url: str | None = typer.Argument(
        None, help="postgresql://… to advise on; default: $DATABASE_URL, else the embedded demo database."
    ),
    query: list[str] = typer.Option([], "--query", "-q", help="A query to advise on (repeatable)."),
    file: Path | None = typer.Option(
        None, "--file", help="A file of SQL statements separated by semicolons ('-': standard input)."
    ),
    stdin: bool = typer.Option(False, "--stdin", help="Read SQL statements from standard input."),
    pg_stat_activity: float | None = typer.Option(
        None,
        "--pg-stat-activity",
        min=0.1,
        help="Sample the queries running in pg_stat_activity for this many seconds (no pg_stat_statements).",
    ),
    include: list[str] = typer.Option([], "--include", help="Only queries reading this table (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Leave out queries reading this table (repeatable)."),
    min_time: float = typer.Option(
        0.0, "--min-time", min=0.0, help="Ignore queries whose total time is below this many ms."
    ),
    log: list[Path] = typer.Option([], "--log", help="A PostgreSQL server log (repeatable); see `pgpulse logs`."),
    table: str | None = typer.Option(None, "--table", help="Only queries that read this table."),
    queryid: int | None = typer.Option(None, "--queryid", help="Only this pg_stat_statements queryid."),
    top: int = typer.Option(20, "--top", min=1, help="Read this many queries (by total time) from the workload."),
    min_calls: int = typer.Option(1, "--min-calls", min=1, help="Ignore queries run fewer times than this."),
    factor: float = typer.Option(2.0, "--factor", min=1.0, help="Keep an index only if the cost drops this many x."),
    measure: bool = typer.Option(False, "--measure", help="Also time the queries for real (EXPLAIN ANALYZE)."),
    allow_build: bool = typer.Option(
        False,
        "--allow-build",
        help="No HypoPG: verify by building each index in a rolled-back transaction "
        "(takes a SHARE lock while building: disposable databases only).",
    ),
    do_apply: bool = typer.Option(False, "--apply", help="Create the advised indexes (CONCURRENTLY)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --apply: do not ask for confirmation."),
    lock_timeout_ms: int = typer.Option(5_000, "--lock-timeout-ms", min=1, help="lock_timeout for --apply."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every step: queries, candidates, costs."),
) -> None:
    """Propose the fewest indexes that make the workload's slow queries fast, each verified by the planner."""
    if file is not None and str(file) == "-":
        file, stdin = None, True
    sources = (query, file, log, stdin, pg_stat_activity is not None)
    if sum(bool(x) for x in sources) > 1:
        fail(
            "give one workload source: --query, --file, --stdin, --log or --pg-stat-activity "
            "(default: pg_stat_statements)"
        )
    if queryid is not None and any(sources):
        fail("--queryid selects from pg_stat_statements: do not combine it with another source")
    given: list[WorkloadQuery] | None = None
    if stdin:
        given = from_stdin(sys.stdin)
        if not given:
            fail("no SQL statements on standard input: pipe them in, e.g. pgpulse advise --stdin < queries.sql")
    target = resolve_or_fail(database_url)
    shown = redact(target.url)
    stderr = Console(stderr=True, highlight=False)

    def step(message: str) -> None:
        if verbose:
            stderr.print(f"[dim]{message}[/]", markup=True, soft_wrap=True)

    if target.server is not None and not allow_build:
        # pgpulse's own embedded demo database is disposable by construction: no HypoPG there, so build.
        allow_build = True
        step("embedded demo database: verifying by rolled-back builds (it is disposable)")

    def warning(message: str) -> None:
        stderr.print(f"[yellow]warning:[/] {message}", soft_wrap=True)

    if do_apply and not yes and not sys.stdin.isatty():
        fail("--apply changes the database: pass --yes to confirm when not on a terminal")
    options = Options(factor=factor, measure=measure, table=table)
    applied: list[Applied] = []
    try:
        advice = asyncio.run(
            _run(
                target.url,
                options,
                allow_build,
                _Source(query, file, log, queryid, given, pg_stat_activity),
                _Filters(top, min_calls, min_time, include, exclude),
                step,
                warning,
            )
        )
        if do_apply and advice.recommendations:
            if not yes:
                names = ", ".join(r.name for r in advice.recommendations)
                if not typer.confirm(f"Create {len(advice.recommendations)} index(es) on {shown}: {names}?"):
                    fail("nothing applied", code=1)
            applied = asyncio.run(apply(libpq_url(target.url), advice.recommendations, lock_timeout_ms, step))
            if measure:
                asyncio.run(_measure_after(target.url, advice, {a.recommendation for a in applied if a.ok}))
    except ConnectError as exc:
        fail(redact_text(f"{shown}: {exc}"))
    except (WorkloadError, VerifyError) as exc:
        fail(redact_text(str(exc)))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        fail(redact_text(f"{shown}: {type(exc).__name__}: {_first_line(exc)}"))
    except typer.Abort:  # Ctrl-C or end of input at the confirmation
        fail("nothing applied", code=1)
    except Exception as exc:  # a bug of ours: still one line (no traceback, no secret), and what to do
        fail(redact_text(f"advise stopped on an unexpected {type(exc).__name__}: {_first_line(exc)}; please report it"))
    finally:
        target.close()
    emit(
        format,
        lambda: render_json(advice, shown),
        lambda: render_markdown(advice, shown),
        lambda console: render_table(advice, shown, console),
    )
    for result in applied:
        style = "green" if result.ok else "bold red"
        stderr.print(f"[{style}]{escape(result.name)}: {escape(redact_text(result.message))}[/]")
    if any(not r.ok for r in applied):
        raise typer.Exit(1)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass
class _Source:
    """Where the workload comes from: exactly one of these, else pg_stat_statements."""

    queries: list[str]
    file: Path | None
    logs: list[Path]
    queryid: int | None
    given: list[WorkloadQuery] | None  # already read (standard input)
    activity_seconds: float | None


@dataclass
class _Filters:
    top: int
    min_calls: int
    min_time: float
    include: list[str]
    exclude: list[str]


async def _run(
    url: str,
    options: Options,
    allow_build: bool,
    source: _Source,
    filters: _Filters,
    step: Callable[[str], None],
    warn: Callable[[str], None],
) -> Advice:
    workload: list[WorkloadQuery] = []
    if source.queries:
        workload = from_text(source.queries, "argument")
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


async def _measure_after(url: str, advice: Advice, created: set[int]) -> None:
    """With the indexes really there, time each query they serve again (same representative values, same
    rolled-back READ ONLY transaction; only statements --measure already found safe to run)."""
    conn, _ = await connect(url)
    try:
        await conn.execute("SET statement_timeout = '10min'")
        verifier = Verifier(conn, "applied", 0)
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
