"""The report of ``pgpulse logs``: the slowest query shapes of PostgreSQL server logs, in three formats.

Everything shown is redacted by :mod:`pgpulse.sql.redact`: query texts are normalized and lose every literal,
plans lose their constants and auto_explain's ``Query Parameters``, bound values (``DETAIL: parameters``) are
never read into the report. Texts from the log are printed as plain text, never as Rich markup.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pgpulse.logs.parse import LogStream
from pgpulse.logs.summary import QueryStats, Summary


def render_json(stream: LogStream, summary: Summary, ranked: list[QueryStats], files: list[Path]) -> str:
    return json.dumps(as_dict(stream, summary, ranked, files), indent=2, allow_nan=False)


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
