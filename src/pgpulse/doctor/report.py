"""Render a doctor report: text for people, JSON for machines, Markdown for pull requests — for one
database or a fleet (one report per database plus a summary).

Fixes are what people copy and paste, so no format ever cuts, wraps or pads them: in the text format each
fix line is printed whole on a line of its own (``soft_wrap``: the terminal may fold it visually, but the
text is intact), in Markdown inside a fenced ``sql`` block, in JSON as one string.

Exit codes for CI: 0 nothing at or above ``--fail-on``, 1 findings at or above it, 2 could not run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pgpulse.doctor.check import Finding, Severity
from pgpulse.doctor.fleet import Audit, FleetSummary
from pgpulse.doctor.runner import Report

STYLE = {Severity.critical: "bold red", Severity.warning: "yellow", Severity.info: "cyan"}
# Evidence shown on lines of their own (long texts, lists), not in the key=value line.
LONG_EVIDENCE = ("query", "definition", "top_statements", "redundant", "covered_by", "waiting", "root_query",
                 "last_query")  # fmt: skip


def exit_code(report: Report, fail_on: Severity) -> int:
    return 1 if any(f.severity >= fail_on for f in report.findings) else 0


def fleet_exit_code(audits: Sequence[Audit], fail_on: Severity) -> int:
    return 1 if any(f.severity >= fail_on for a in audits for f in a.findings) else 0


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity, f.check, f.object))


def _evidence(evidence: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in evidence.items() if key not in LONG_EVIDENCE)


def _details(f: Finding) -> list[str]:
    """The long evidence, one item a line: statements behind a signal, the sessions in a lock chain."""
    lines = []
    for s in f.evidence.get("top_statements") or []:
        lines.append(f"· {s['query']} ({s['calls']} calls, {s['mean_ms']} ms)")
    if f.evidence.get("root_query"):
        lines.append(f"root runs: {f.evidence['root_query']}")
    for w in f.evidence.get("waiting") or []:
        lines.append(f"· pid {w['pid']} waits {w['waits_seconds']} s for {w['lock']}: {w['query']}")
    return lines


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


def _markdown_findings(findings: list[Finding], level: str) -> list[str]:
    lines: list[str] = []
    for severity in sorted(Severity, reverse=True):
        group = [f for f in _sorted(findings) if f.severity is severity]
        if not group:
            continue
        lines += [f"{level} {severity} ({len(group)})", ""]
        for f in group:
            lines += [f"{level}# {f.title}", "", f"- check: `{f.check}`; object: `{f.object}`"]
            if f.evidence:
                lines.append(f"- evidence: {_evidence(f.evidence)}")
            lines += [f"  - {d}" for d in _details(f)]
            if f.note:
                lines.append(f"- note: {f.note}")
            if f.fix:
                lines += ["", "```sql", f.fix, "```"]
            lines.append("")
    return lines


def render_markdown(report: Report, target: str) -> str:
    lines = [
        f"# pgpulse doctor: {target}",
        "",
        f"PostgreSQL {report.server_version}, {len(report.results)} checks in {report.seconds:.2f} s.",
        "",
        *_markdown_findings(report.findings, "##"),
    ]
    skipped = [r for r in report.results if r.skipped]
    if skipped:
        lines += ["## skipped checks", ""] + [f"- {r.title}: {r.skipped}" for r in skipped] + [""]
    if not report.findings:
        lines.append("No findings.")
    return "\n".join(lines)


def _print_findings(findings: list[Finding], console: Console) -> None:
    for severity in sorted(Severity, reverse=True):
        group = [f for f in _sorted(findings) if f.severity is severity]
        if not group:
            continue
        console.print(f"\n[{STYLE[severity]}]── {severity} ({len(group)}) ──[/]")
        for f in group:
            console.print(f"\n[{STYLE[severity]}]●[/] [dim]{f.check}[/]  [{STYLE[severity]}]{escape(f.title)}[/]")
            if f.evidence and _evidence(f.evidence):
                console.print(f"  [dim]{escape(_evidence(f.evidence))}[/]")
            for detail in _details(f):
                console.print(f"  {escape(detail)}", markup=True)
            if f.note:
                console.print(f"  {escape(f.note)}")
            if f.fix:
                console.print("  [bold]fix:[/]")
                for line in f.fix.splitlines():
                    # never wrapped, cropped or indented: what is copied is exactly the statement
                    console.print(Text(line, style="green"), soft_wrap=True)


def render_table(report: Report, target: str, console: Console) -> None:
    console.print(
        f"[bold]pgpulse doctor[/] {escape(target)} — PostgreSQL {report.server_version}, "
        f"{len(report.results)} checks in {report.seconds:.2f} s"
    )
    _print_findings(report.findings, console)
    for r in report.results:
        if r.skipped:
            console.print(f"[dim]{escape(r.title)}: {escape(r.skipped)}[/]")
    if not report.findings:
        console.print("[green]No findings.[/]")


# -- a fleet -------------------------------------------------------------------------------------------


def _audit_dict(audit: Audit) -> dict[str, Any]:
    body: dict[str, Any] = {"name": audit.target.name}
    if audit.report is not None:
        body |= as_dict(audit.report, audit.shown)
        if audit.failure is not None:
            body["findings"].insert(0, audit.failure.as_dict())
    else:
        assert audit.failure is not None
        body |= {"database": audit.shown, "error": audit.failure.title, "findings": [audit.failure.as_dict()]}
    body["worst"] = str(audit.worst) if audit.worst is not None else None
    body["seconds"] = round(audit.seconds, 3)
    return body


def _summary_dict(summary: FleetSummary) -> dict[str, Any]:
    return {
        "databases": summary.databases,
        "worst": str(summary.worst) if summary.worst is not None else None,
        "by_worst_severity": summary.by_worst,
        "unreachable": summary.unreachable,
        "seconds": round(summary.seconds, 3),
    }


def render_fleet_json(audits: Sequence[Audit], summary: FleetSummary) -> str:
    """One document: the summary, then one object per database in the order given."""
    return json.dumps({"summary": _summary_dict(summary), "databases": [_audit_dict(a) for a in audits]},
                      indent=2, default=str)  # fmt: skip


def _summary_rows(audits: Sequence[Audit]) -> list[tuple[str, str, str, str]]:
    rows = []
    for a in audits:
        counts = ", ".join(
            f"{n} {s}" for s in sorted(Severity, reverse=True) if (n := sum(f.severity is s for f in a.findings))
        )
        rows.append((a.target.name, str(a.worst) if a.worst else "clean", counts or "-", f"{a.seconds:.2f}"))
    return rows


def _summary_line(summary: FleetSummary) -> str:
    parts = [f"{summary.by_worst[k]} {k}" for k in ("critical", "warning", "info", "clean") if k in summary.by_worst]
    line = f"{summary.databases} databases in {summary.seconds:.1f} s — worst: {', '.join(parts)}"
    return line + (f"; {summary.unreachable} could not be audited" if summary.unreachable else "")


def render_fleet_markdown(audits: Sequence[Audit], summary: FleetSummary) -> str:
    lines = ["# pgpulse doctor: fleet", "", _summary_line(summary), "",
             "| database | worst | findings | seconds |", "| --- | --- | --- | ---: |"]  # fmt: skip
    lines += [f"| {n} | {w} | {c} | {s} |" for n, w, c, s in _summary_rows(audits)]
    for a in audits:
        lines += ["", f"## {a.target.name}", "", f"`{a.shown}`", ""]
        lines += _markdown_findings(a.findings, "###") or ["No findings.", ""]
    return "\n".join(lines)


def render_fleet_table(audits: Sequence[Audit], summary: FleetSummary, console: Console) -> None:
    for a in audits:
        console.rule(f"[bold]{escape(a.target.name)}[/]")
        if a.report is not None:
            console.print(f"{escape(a.shown)} — PostgreSQL {a.report.server_version}, {a.seconds:.2f} s")
        else:
            console.print(escape(a.shown))
        _print_findings(a.findings, console)
        if not a.findings:
            console.print("[green]No findings.[/]")
    console.rule("[bold]summary[/]")
    table = Table(show_edge=False)
    for column in ("database", "worst", "findings", "seconds"):
        table.add_column(column, overflow="fold")
    for name, worst, counts, seconds in _summary_rows(audits):
        style = STYLE.get(Severity[worst]) if worst != "clean" else "green"
        table.add_row(escape(name), f"[{style}]{worst}[/]", counts, seconds)
    console.print(table)
    console.print(_summary_line(summary))
