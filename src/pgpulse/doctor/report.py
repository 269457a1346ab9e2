"""Render a doctor report: a Rich table for people, JSON for machines, Markdown for pull requests.

Exit codes for CI: 0 nothing at or above ``--fail-on``, 1 findings at or above it, 2 could not run.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from pgpulse.doctor.check import Finding, Severity
from pgpulse.doctor.runner import Report

STYLE = {Severity.critical: "bold red", Severity.warning: "yellow", Severity.info: "cyan"}


def exit_code(report: Report, fail_on: Severity) -> int:
    return 1 if any(f.severity >= fail_on for f in report.findings) else 0


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity, f.check, f.object))


def _evidence(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        if key in ("query", "definition", "top_statements", "redundant", "covered_by"):
            continue
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def as_dict(report: Report, target: str) -> dict[str, Any]:
    return {
        "database": target,
        "server_version": report.server_version,
        "seconds": round(report.seconds, 3),
        "summary": {str(s): sum(1 for f in report.findings if f.severity is s) for s in Severity},
        "checks": [
            {
                "name": r.name,
                "title": r.title,
                "findings": len(r.findings),
                "skipped": r.skipped,
                "seconds": round(r.seconds, 4),
            }
            for r in report.results
        ],
        "findings": [f.as_dict() for f in _sorted(report.findings)],
    }


def render_json(report: Report, target: str) -> str:
    return json.dumps(as_dict(report, target), indent=2, default=str)


def render_markdown(report: Report, target: str) -> str:
    lines = [
        f"# pgpulse doctor: {target}",
        "",
        f"PostgreSQL {report.server_version}, {len(report.results)} checks in {report.seconds:.2f} s.",
        "",
    ]
    for severity in sorted(Severity, reverse=True):
        group = [f for f in _sorted(report.findings) if f.severity is severity]
        if not group:
            continue
        lines += [f"## {severity} ({len(group)})", ""]
        for f in group:
            lines.append(f"### {f.title}")
            lines.append("")
            lines.append(f"- check: `{f.check}`; object: `{f.object}`")
            if f.evidence:
                lines.append(f"- evidence: {_evidence(f.evidence)}")
            if f.note:
                lines.append(f"- note: {f.note}")
            if f.fix:
                lines += ["", "```sql", f.fix, "```"]
            lines.append("")
    skipped = [r for r in report.results if r.skipped]
    if skipped:
        lines += ["## skipped checks", ""] + [f"- {r.title}: {r.skipped}" for r in skipped] + [""]
    if not report.findings:
        lines.append("No findings.")
    return "\n".join(lines)


def render_table(report: Report, target: str, console: Console) -> None:
    console.print(
        f"[bold]pgpulse doctor[/] {target} — PostgreSQL {report.server_version}, "
        f"{len(report.results)} checks in {report.seconds:.2f} s"
    )
    for severity in sorted(Severity, reverse=True):
        group = [f for f in _sorted(report.findings) if f.severity is severity]
        if not group:
            continue
        table = Table(title=f"{severity} ({len(group)})", title_style=STYLE[severity], show_lines=True, expand=True)
        table.add_column("check", style="dim", no_wrap=True)
        table.add_column("finding and evidence", ratio=3)
        table.add_column("fix", ratio=2)
        for f in group:
            body = f"[{STYLE[severity]}]{f.title}[/]"
            if f.evidence:
                body += f"\n[dim]{_evidence(f.evidence)}[/]"
            statements = f.evidence.get("top_statements")
            if statements:
                body += "".join(f"\n  · {s['query'][:120]} ({s['calls']} calls, {s['mean_ms']} ms)" for s in statements)
            if f.note:
                body += f"\n{f.note}"
            table.add_row(f.check, body, f.fix or "")
        console.print(table)
    for r in report.results:
        if r.skipped:
            console.print(f"[dim]{r.title}: {r.skipped}[/]")
    if not report.findings:
        console.print("[green]No findings.[/]")
