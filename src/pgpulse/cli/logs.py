"""``pgpulse logs FILE...``: the slowest query shapes in PostgreSQL server logs, ranked, in three formats.

Everything shown is redacted by :mod:`pgpulse.sql.redact` (see :mod:`pgpulse.logs.report`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pgpulse.cli.errors import fail
from pgpulse.formats import Format
from pgpulse.logs.summary import SortKey


def logs(
    files: list[Path] = typer.Argument(
        ..., help="Server log files (stderr, csvlog or jsonlog; .gz accepted; a FIFO is read as a stream)."
    ),
    format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    top: int = typer.Option(20, "--top", min=0, help="Show this many query shapes (0: all)."),
    sort: SortKey = typer.Option(SortKey.total, "--sort", help="Rank by total, mean, count, p95 or max time."),
    min_duration: float = typer.Option(0.0, "--min-duration", min=0, help="Ignore executions faster than this (ms)."),
) -> None:
    """Group logged statements by normalized query and show count, total, mean, p95 and max time per query.

    Memory stays flat whatever the log's size: at most 1,000 query shapes are kept (the rest are summed up as
    "other shapes"), and statements over 64 KiB are counted without being parsed ("oversized")."""
    from rich.console import Console
    from rich.markup import escape

    from pgpulse.formats import emit
    from pgpulse.logs.parse import LogReadError, read_logs
    from pgpulse.logs.report import render_json, render_markdown, render_table
    from pgpulse.logs.summary import aggregate, rank

    try:
        stream = read_logs(files)
    except LogReadError as exc:
        fail(escape(str(exc)))  # fail() prints Rich markup: a path may hold "[/]"
    summary = aggregate(stream.entries, min_duration)
    if stream.errors:  # a file became unreadable part way: a partial report would mislead
        fail(escape(f"cannot read log: {'; '.join(stream.errors)}"))
    ranked = rank(summary.shapes, sort, top or None)
    emit(
        format,
        lambda: render_json(stream, summary, ranked, files),
        lambda: render_markdown(stream, summary, ranked, files),
        lambda console: render_table(stream, summary, ranked, files, console),
    )
    if stream.records == 0:
        Console(stderr=True).print(
            "[yellow]no log records found:[/] is this a PostgreSQL server log? Enable timings with "
            "log_min_duration_statement = 0 (or a threshold in ms)."
        )
