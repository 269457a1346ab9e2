"""``pgpulse advise [DATABASE_URL]``: verified CREATE INDEX statements for the slow queries of a workload."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pgpulse.cli.errors import EXIT_FINDINGS, fail
from pgpulse.formats import Format


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
    import asyncio

    import asyncpg
    from rich.console import Console
    from rich.markup import escape

    from pgpulse.advisor.advise import Options
    from pgpulse.advisor.apply import Applied, apply
    from pgpulse.advisor.report import render_json, render_markdown, render_table
    from pgpulse.advisor.session import WorkloadFilters, WorkloadSource, advise_database, measure_after
    from pgpulse.advisor.verify import VerifyError
    from pgpulse.advisor.workload import WorkloadError, WorkloadQuery, from_stdin
    from pgpulse.cli.target import resolve_or_fail
    from pgpulse.db.urls import libpq_url, redact
    from pgpulse.doctor.runner import ConnectError
    from pgpulse.errors import one_line
    from pgpulse.formats import emit
    from pgpulse.sql import redact_text

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
            advise_database(
                target.url,
                options,
                WorkloadSource(query, file, log, queryid, given, pg_stat_activity),
                WorkloadFilters(top, min_calls, min_time, include, exclude),
                allow_build=allow_build,
                step=step,
                warn=warning,
            )
        )
        if do_apply and advice.recommendations:
            if not yes:
                names = ", ".join(r.name for r in advice.recommendations)
                if not typer.confirm(f"Create {len(advice.recommendations)} index(es) on {shown}: {names}?"):
                    fail("nothing applied", code=EXIT_FINDINGS)
            applied = asyncio.run(apply(libpq_url(target.url), advice.recommendations, lock_timeout_ms, step))
            if measure:
                asyncio.run(measure_after(target.url, advice, {a.recommendation for a in applied if a.ok}))
    except ConnectError as exc:
        fail(redact_text(f"{shown}: {exc}"))
    except (WorkloadError, VerifyError) as exc:
        fail(redact_text(str(exc)))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        fail(redact_text(f"{shown}: {type(exc).__name__}: {one_line(exc)}"))
    except typer.Abort:  # Ctrl-C or end of input at the confirmation
        fail("nothing applied", code=EXIT_FINDINGS)
    except Exception as exc:  # a bug of ours: still one line (no traceback, no secret), and what to do
        fail(redact_text(f"advise stopped on an unexpected {type(exc).__name__}: {one_line(exc)}; please report it"))
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
        raise typer.Exit(EXIT_FINDINGS)
