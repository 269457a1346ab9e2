"""``pgpulse doctor [DATABASE_URL…] [--targets FILE]``: a read-only audit, grouped by severity, with evidence
and fixes — of one database, or of a fleet (per-database reports plus a summary)."""

from __future__ import annotations

import asyncio
import re
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from pgpulse.cli.errors import fail
from pgpulse.doctor import DEFAULT_BUDGET_SECONDS, DEFAULT_CONCURRENCY  # shown in --help
from pgpulse.errors import UserError
from pgpulse.formats import Format

if TYPE_CHECKING:
    from pgpulse.db.targets import Target
    from pgpulse.doctor.check import Options, Severity

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


class FailOn(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


def parse_size(text: str) -> int:
    """``16GB``, ``512MB``, ``64GiB`` → bytes (powers of 1024, as PostgreSQL reads sizes)."""
    match = SIZE.match(text)
    if not match:
        raise UserError(f"--memory {text!r}: give a size such as 16GB or 512MB")
    power = " kmgt".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * 1024**power)


def doctor(
    database_urls: list[str] | None = typer.Argument(
        None, help="postgresql://… to audit (several: a fleet); default: $DATABASE_URL, else the demo database."
    ),
    targets: Path | None = typer.Option(
        None,
        "--targets",
        help="File with one database per line: URL, NAME URL or NAME = URL (README: Targets file). Audited as a fleet.",
    ),
    format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    fail_on: FailOn = typer.Option(FailOn.warning, help="Exit 1 when a finding is at least this severe."),
    app_workers: int | None = typer.Option(None, min=1, help="Application processes sharing the database."),
    pool_size: int | None = typer.Option(None, min=0, help="SQLAlchemy pool_size per process."),
    max_overflow: int | None = typer.Option(
        None, min=0, help="SQLAlchemy max_overflow per process (default: SQLAlchemy's, 10)."
    ),
    long_query_seconds: float = typer.Option(60.0, min=0, help="Report queries running longer than this."),
    idle_in_transaction_seconds: float = typer.Option(
        60.0, min=0, help="Report sessions idle in a transaction longer than this."
    ),
    memory: str | None = typer.Option(
        None,
        help="The server's RAM (e.g. 16GB) for the memory settings check; default: this machine's when "
        "the server listens on loopback, else that check is skipped.",
    ),
    concurrency: int = typer.Option(DEFAULT_CONCURRENCY, min=1, max=64, help="Fleet: databases audited at once."),
    time_budget: float = typer.Option(
        DEFAULT_BUDGET_SECONDS, min=1, help="Fleet: seconds each database may take; what is left over is skipped."
    ),
) -> None:
    """Audit PostgreSQL read-only: indexes, constraints, sequences, vacuum, bloat, statistics, settings,
    connections, locks, replication, queries."""
    from pgpulse.cli.target import resolve_or_fail
    from pgpulse.db.targets import Target, read_targets
    from pgpulse.db.urls import redact
    from pgpulse.doctor.check import Options, Severity
    from pgpulse.doctor.report import exit_code, render_json, render_markdown, render_table
    from pgpulse.doctor.runner import ConnectError, run_checks
    from pgpulse.formats import emit

    if (app_workers is None) != (pool_size is None):
        fail("--app-workers and --pool-size go together (and optionally --max-overflow)")
    try:
        options = Options(
            app_workers=app_workers,
            pool_size=pool_size,
            max_overflow=max_overflow,
            long_query_seconds=long_query_seconds,
            idle_in_transaction_seconds=idle_in_transaction_seconds,
            memory_bytes=parse_size(memory) if memory is not None else None,
        )
        fleet = [Target(name=redact(u), url=u) for u in database_urls or []]
        if targets is not None:
            fleet += read_targets(targets)
    except UserError as exc:
        fail(str(exc))
    if len(fleet) > 1 or targets is not None:
        _fleet(fleet, options, format, Severity[fail_on.value], concurrency, time_budget)
    target = resolve_or_fail(fleet[0].url if fleet else None)
    shown = redact(target.url)
    from rich.console import Console

    stderr = Console(stderr=True, highlight=False)
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


def _fleet(
    fleet: list[Target], options: Options, format: Format, fail_on: Severity, concurrency: int, budget: float
) -> NoReturn:
    from rich.console import Console

    from pgpulse.db.urls import DatabaseURLError, libpq_url
    from pgpulse.doctor.fleet import audit_fleet
    from pgpulse.doctor.fleet import summarize as summarize_fleet
    from pgpulse.doctor.report import fleet_exit_code, render_fleet_json, render_fleet_markdown, render_fleet_table
    from pgpulse.formats import emit

    for t in fleet:
        try:
            libpq_url(t.url)
        except DatabaseURLError as exc:
            fail(f"{t.name}: {exc}")
    began = time.perf_counter()
    with Console(stderr=True, highlight=False).status(f"auditing {len(fleet)} databases…"):
        audits = asyncio.run(audit_fleet(fleet, options, concurrency=concurrency, budget_seconds=budget))
    summary = summarize_fleet(audits, time.perf_counter() - began)
    emit(
        format,
        lambda: render_fleet_json(audits, summary),
        lambda: render_fleet_markdown(audits, summary),
        lambda console: render_fleet_table(audits, summary, console),
    )
    raise typer.Exit(fleet_exit_code(audits, fail_on))
