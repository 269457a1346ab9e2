"""``pgpulse doctor [DATABASE_URL]``: a read-only audit, grouped by severity, with evidence and fixes."""

from __future__ import annotations

import asyncio
from enum import StrEnum

import typer
from rich.console import Console

from pgpulse.db.engine import redact
from pgpulse.db.resolve import resolve_or_fail
from pgpulse.doctor.check import Options, Severity
from pgpulse.doctor.report import exit_code, render_json, render_markdown, render_table
from pgpulse.doctor.runner import ConnectError, run_checks
from pgpulse.errors import fail
from pgpulse.formats import Format, emit


class FailOn(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


def doctor(
    database_url: str | None = typer.Argument(
        None, help="postgresql://… to audit; default: $DATABASE_URL, else the embedded demo database."
    ),
    format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    fail_on: FailOn = typer.Option(FailOn.warning, help="Exit 1 when a finding is at least this severe."),
    app_workers: int | None = typer.Option(None, min=1, help="Application processes sharing the database."),
    pool_size: int | None = typer.Option(None, min=0, help="SQLAlchemy pool_size per process."),
    max_overflow: int | None = typer.Option(None, min=0, help="SQLAlchemy max_overflow per process."),
) -> None:
    """Audit a live PostgreSQL read-only: indexes, vacuum, bloat, statistics, settings, connections, queries."""
    if (app_workers is None) != (pool_size is None):
        fail("--app-workers and --pool-size go together (and optionally --max-overflow)")
    target = resolve_or_fail(database_url)
    shown = redact(target.url)
    stderr = Console(stderr=True, highlight=False)
    options = Options(app_workers=app_workers, pool_size=pool_size, max_overflow=max_overflow)
    try:
        with stderr.status("connecting…") as status:

            def progress(title: str) -> None:
                status.update(f"checking: {title}…")

            report = asyncio.run(run_checks(target.url, options, on_progress=progress))
    except ConnectError as exc:
        fail(f"{shown}: {exc}")
    finally:
        target.close()
    emit(
        format,
        lambda: render_json(report, shown),
        lambda: render_markdown(report, shown),
        lambda console: render_table(report, shown, console),
    )
    raise typer.Exit(exit_code(report, Severity[fail_on.value]))
