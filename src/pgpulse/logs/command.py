"""``pgpulse logs FILE...``: the slowest query shapes in PostgreSQL server logs, ranked, in three formats."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pgpulse.errors import fail
from pgpulse.formats import Format, emit
from pgpulse.logs.parse import ParseResult, read_logs
from pgpulse.logs.summary import QueryStats, SortKey, rank, summarize


def logs(
    files: list[Path] = typer.Argument(..., help="Server log files (stderr, csvlog or jsonlog; .gz accepted)."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    top: int = typer.Option(20, "--top", min=0, help="Show this many query shapes (0: all)."),
    sort: SortKey = typer.Option(SortKey.total, "--sort", help="Rank by total, mean, count, p95 or max time."),
    min_duration: float = typer.Option(0.0, "--min-duration", min=0, help="Ignore executions faster than this (ms)."),
) -> None:
    """Group logged statements by normalized query and show count, total, mean, p95 and max time per query."""
    for path in files:
        if not path.is_file():
            fail(f"{path}: no such log file (give the path of a PostgreSQL server log, e.g. postgresql.log)")
    try:
        parsed = read_logs(files)
    except (OSError, EOFError) as exc:  # unreadable file, truncated .gz
        fail(f"cannot read log: {exc}")
    ranked = rank(summarize(parsed.entries, min_duration), sort, top or None)
    emit(
        format,
        lambda: json.dumps(as_dict(parsed, ranked, files), indent=2),
        lambda: render_markdown(parsed, ranked, files),
        lambda console: render_table(parsed, ranked, files, console),
    )
    if parsed.records == 0:
        Console(stderr=True).print(
            "[yellow]no log records found:[/] is this a PostgreSQL server log? Enable timings with "
            "log_min_duration_statement = 0 (or a threshold in ms)."
        )


def _headline(parsed: ParseResult, files: list[Path]) -> str:
    names = ", ".join(p.name for p in files)
    return (
        f"{names}: {parsed.lines:,} lines, {len(parsed.entries):,} timed statements, "
        f"{parsed.malformed:,} malformed lines skipped"
    )


def as_dict(parsed: ParseResult, ranked: list[QueryStats], files: list[Path]) -> dict[str, object]:
    return {
        "files": [str(p) for p in files],
        "lines": parsed.lines,
        "records": parsed.records,
        "timed_statements": len(parsed.entries),
        "malformed": parsed.malformed,
        "queries": [s.as_dict() for s in ranked],
    }


def render_markdown(parsed: ParseResult, ranked: list[QueryStats], files: list[Path]) -> str:
    lines = [
        "# pgpulse logs",
        "",
        _headline(parsed, files),
        "",
        "| # | count | total ms | mean ms | p95 ms | max ms | query |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, s in enumerate(ranked, 1):
        query = " ".join(s.query.split()).replace("|", "\\|")
        lines.append(
            f"| {i} | {s.count} | {s.total:.1f} | {s.mean:.2f} | {s.p95:.2f} | {s.max:.2f} | `{query[:300]}` |"
        )
    plans = [s for s in ranked if s.plan]
    for s in plans:
        lines += ["", f"## plan of the slowest `{' '.join(s.query.split())[:80]}` ({s.plan_ms:.1f} ms)", ""]
        lines += ["```", s.plan or "", "```"]
    return "\n".join(lines)


def render_table(parsed: ParseResult, ranked: list[QueryStats], files: list[Path], console: Console) -> None:
    console.print(f"[bold]pgpulse logs[/] {_headline(parsed, files)}")
    table = Table(expand=True)
    for name in ("#", "count", "total ms", "mean ms", "p95 ms", "max ms"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("query", ratio=1)
    for i, s in enumerate(ranked, 1):
        query = " ".join(s.query.split())
        if s.plan:
            query += f"\n[dim]auto_explain plan ({s.plan_ms:.1f} ms): {s.plan.splitlines()[0].strip()}[/]"
        table.add_row(str(i), f"{s.count:,}", f"{s.total:,.1f}", f"{s.mean:.2f}", f"{s.p95:.2f}", f"{s.max:.2f}", query)
    console.print(table)
