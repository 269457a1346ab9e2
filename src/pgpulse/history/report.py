"""``pgpulse history diff`` output: a table for people, JSON for pipelines, Markdown for a PR comment.

Query texts are pg_stat_statements' normalised texts, passed through :func:`pgpulse.sql.redact_sql` anyway (a
text can keep a literal, e.g. from a utility statement); they are printed whole, never cut at the terminal width.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from pgpulse.history.diff import DiffReport


def _window(report: DiffReport) -> dict[str, Any]:
    w = report.windows
    return {
        "baseline": [w.baseline_start.isoformat(), w.split.isoformat()],
        "current": [w.split.isoformat(), w.end.isoformat()],
        "baseline_snapshots": report.baseline_snapshots,
        "current_snapshots": report.current_snapshots,
    }


def render_json(report: DiffReport) -> str:
    body = {
        "target": report.target,
        "windows": _window(report),
        "regressions": report.regressions,
        "findings": [f.to_json() for f in report.findings],
        "seconds": round(report.seconds, 4),
    }
    return json.dumps(body, indent=2, default=str)


def _heading(report: DiffReport) -> str:
    w = report.windows
    return (
        f"baseline {w.baseline_start:%Y-%m-%d %H:%M:%S} → {w.split:%Y-%m-%d %H:%M:%S} "
        f"({report.baseline_snapshots} snapshots), current → {w.end:%Y-%m-%d %H:%M:%S} "
        f"({report.current_snapshots} snapshots)"
    )


def render_markdown(report: DiffReport) -> str:
    lines = [f"## pgpulse history diff: {report.target}", "", _heading(report), ""]
    if not report.findings:
        lines.append("No regressions.")
        return "\n".join(lines)
    lines += ["| # | finding | subject | change |", "|---|---|---|---|"]
    for i, f in enumerate(report.findings, start=1):
        subject = f.subject.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {i} | {f.kind.value} | `{subject}` | {f.detail} |")
    return "\n".join(lines)


def render_table(report: DiffReport, console: Console) -> None:
    console.print(f"[bold]{report.target}[/]: {_heading(report)}", soft_wrap=True)
    if not report.findings:
        console.print("[green]No regressions.[/]")
        return
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("finding", no_wrap=True)
    table.add_column("subject", overflow="fold")
    table.add_column("change", overflow="fold")
    for i, f in enumerate(report.findings, start=1):
        table.add_row(str(i), f.kind.value, f.subject, f.detail)
    console.print(table)
    console.print(f"{len(report.findings)} regression(s) in {report.seconds * 1000:.0f} ms")
