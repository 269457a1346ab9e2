"""``pgpulse logs FILE...``: the slowest query shapes in PostgreSQL server logs, ranked, in three formats.

Everything shown is redacted by :mod:`pgpulse.sql.redact`: query texts are normalized and lose every literal,
plans lose their constants and auto_explain's ``Query Parameters``, bound values (``DETAIL: parameters``) are
never read into the report. Texts from the log are printed as plain text, never as Rich markup.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pgpulse.errors import fail
from pgpulse.formats import Format, emit
from pgpulse.logs.parse import LogReadError, LogStream, read_logs
from pgpulse.logs.summary import QueryStats, SortKey, Summary, aggregate, rank


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
        lambda: json.dumps(as_dict(stream, summary, ranked, files), indent=2, allow_nan=False),
        lambda: render_markdown(stream, summary, ranked, files),
        lambda console: render_table(stream, summary, ranked, files, console),
    )
    if stream.records == 0:
        Console(stderr=True).print(
            "[yellow]no log records found:[/] is this a PostgreSQL server log? Enable timings with "
            "log_min_duration_statement = 0 (or a threshold in ms)."
        )


def _headline(stream: LogStream, summary: Summary, files: list[Path]) -> str:
    names = ", ".join(p.name for p in files)
    line = (
        f"{names}: {stream.lines:,} lines, {stream.timed:,} timed statements, "
        f"{stream.malformed:,} malformed lines skipped"
    )
    if stream.oversized:
        line += f", {stream.oversized:,} oversized (counted, not parsed)"
    if summary.other_shapes:
        line += (
            f", {summary.other.count:,} executions of {summary.other_shapes:,} less costly shapes summed up as "
            "'other shapes'"
        )
    return line


def as_dict(stream: LogStream, summary: Summary, ranked: list[QueryStats], files: list[Path]) -> dict[str, object]:
    other = summary.other
    return {
        "files": [str(p) for p in files],
        "lines": stream.lines,
        "records": stream.records,
        "timed_statements": stream.timed,
        "malformed": stream.malformed,
        "oversized": stream.oversized,
        "executions": summary.executions,
        "other_shapes": {"shapes": summary.other_shapes, "count": other.count, "total_ms": round(other.total, 3)},
        "queries": [s.as_dict() for s in ranked],
    }


def _fence(text: str) -> str:
    """A Markdown code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_code(text: str) -> str:
    """Inline Markdown code that survives backticks and pipes in ``text``."""
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    escaped = text.replace("|", "\\|")
    return f"{ticks} {escaped} {ticks}"


def render_markdown(stream: LogStream, summary: Summary, ranked: list[QueryStats], files: list[Path]) -> str:
    lines = [
        "# pgpulse logs",
        "",
        _headline(stream, summary, files),
        "",
        "| # | count | total ms | mean ms | p95 ms | max ms | query |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, s in enumerate(ranked, 1):
        query = " ".join(s.query.split())
        lines.append(
            f"| {i} | {s.count} | {s.total:.1f} | {s.mean:.2f} | {s.p95:.2f} | {s.max:.2f} | {_md_code(query)} |"
        )
    for i, s in enumerate(ranked, 1):
        if s.plan:
            fence = _fence(s.plan)
            lines += ["", f"## plan of the slowest execution of #{i} ({s.plan_ms:.1f} ms)", "", fence, s.plan, fence]
    return "\n".join(lines)


def render_table(
    stream: LogStream, summary: Summary, ranked: list[QueryStats], files: list[Path], console: Console
) -> None:
    console.print(Text.assemble(("pgpulse logs ", "bold"), _headline(stream, summary, files)))
    table = Table(expand=True)
    for name in ("#", "count", "total ms", "mean ms", "p95 ms", "max ms"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("query", ratio=1)
    for i, s in enumerate(ranked, 1):
        query = Text(" ".join(s.query.split()))  # Text, not markup: "[/]" in a query must print as it is
        if s.plan:
            query.append(f"\nauto_explain plan ({s.plan_ms:.1f} ms): {s.plan.splitlines()[0].strip()}", "dim")
        table.add_row(str(i), f"{s.count:,}", f"{s.total:,.1f}", f"{s.mean:.2f}", f"{s.p95:.2f}", f"{s.max:.2f}", query)
    console.print(table)
