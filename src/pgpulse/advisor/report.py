"""Render advice: each index with its reasons, costs, size and write cost; then every query's verdict."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from pgpulse.advisor.advise import Advice, Recommendation, Status, Verdict, shape_of
from pgpulse.advisor.catalog import index_name
from pgpulse.units import pretty_bytes

# Queries are shown as their normalized shape (every constant a $n): a query's literals and the pg_stats values
# it was costed with are application data, and a report is pasted into tickets and chats.

STATUS_STYLE = {Status.improved: "green", Status.covered: "cyan", Status.no_gain: "yellow", Status.skipped: "dim"}


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f} ms"


def _speedup(verdict: Verdict) -> str:
    text = f"cost {verdict.cost_before:,.1f} → {verdict.cost_after:,.1f} ({verdict.factor:,.1f}× lower)"
    if verdict.measured_before_ms is not None and verdict.measured_after_ms:
        ratio = verdict.measured_before_ms / verdict.measured_after_ms
        text += (
            f"; measured {_ms(verdict.measured_before_ms)} → {_ms(verdict.measured_after_ms)} ({ratio:,.1f}× faster)"
        )
    elif verdict.measured_before_ms is not None:
        text += f"; measured now {_ms(verdict.measured_before_ms)} (after: needs --allow-build or --apply)"
    if verdict.not_measured:
        text += f"; not executed: {verdict.not_measured} (estimated cost only)"
    if verdict.generic_plan:
        text += " [generic plan]"
    return text


def shown(verdict: Verdict) -> str:
    """The query as a report shows it: its normalized shape on one line."""
    return shape_of(verdict.query.sql)


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {
        "query": shown(v),
        "source": v.query.source,
        "queryid": v.query.queryid,
        "calls": v.query.calls,
        "status": v.status,
        "reason": v.reason,
        "cost_before": v.cost_before,
        "cost_after": v.cost_after,
        "cost_factor": round(v.factor, 2) if v.factor else None,
        "measured_before_ms": v.measured_before_ms,
        "measured_after_ms": v.measured_after_ms,
        "not_measured": v.not_measured,
        "generic_plan": v.generic_plan,
        "index": index_name(v.index.table.name, v.index) if v.index else None,
        # every advised index the query's final plan uses (a join or an OR may use several)
        "indexes": [index_name(c.table.name, c) for c in ([v.index] if v.index else []) + v.also],
    }


def _per_hour(ms: float | None, advice: Advice) -> float | None:
    if ms is None or not advice.window_hours:
        return None
    return ms / advice.window_hours


def _duration(hours: float) -> str:
    seconds = hours * 3600
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{hours:,.1f} h"


def saving_text(r: Recommendation, advice: Advice) -> str:
    """The read saving beside the write cost, per hour of the observed window when its length is known."""
    if r.saving_ms is None:
        return "per-query advice (no set selection: HypoPG is needed to cost indexes together)"
    if not advice.timed:
        return (
            f"estimated cost saved: {r.saving_ms:,.1f} (planner units; the queries came without observed times, "
            "so the write cost is not weighed: read them from pg_stat_statements or a log)"
        )
    unit = "ms/hour" if advice.window_hours else "ms per observed window"
    saving = _per_hour(r.saving_ms, advice) if advice.window_hours else r.saving_ms
    write = _per_hour(r.write_ms, advice) if advice.window_hours else r.write_ms
    window = f" (observed over {_duration(advice.window_hours)})" if advice.window_hours else ""
    return f"saves {saving:,.1f} {unit}; writes cost ~{write or 0:,.1f} {unit}{window}"


def recommendation_dict(r: Recommendation, advice: Advice | None = None) -> dict[str, Any]:
    return {
        "name": r.name,
        "table": r.candidate.table.qualified,
        "columns": [{"name": c.name, "desc": c.desc} for c in r.candidate.columns],
        "create": r.create_sql,
        "alembic": r.alembic(),
        "size_bytes": r.size_bytes,
        "reason": r.verdicts[0].reason if r.verdicts else "",
        "write_cost": r.write_note(),
        "saving_ms": r.saving_ms,
        "write_ms": r.write_ms,
        "saving_ms_per_hour": _per_hour(r.saving_ms, advice) if advice and advice.timed else None,
        "write_ms_per_hour": _per_hour(r.write_ms, advice) if advice and advice.timed else None,
        "saving": saving_text(r, advice) if advice else None,
        "queries": [verdict_dict(v) for v in r.verdicts],
    }


def redundant_dicts(advice: Advice) -> list[dict[str, Any]]:
    return [
        {
            "index": d.index.name,
            "table": d.table,
            "because": index_name(d.because.table.name, d.because),
            "drop": d.drop_sql,
        }
        for d in advice.redundant
    ]


def _reason(v: Verdict) -> str:
    """The verdict's reason, plus why --measure did not run a query the advisor did not improve."""
    unmeasured = v.not_measured and v.status is not Status.improved
    return v.reason + (f"; not executed: {v.not_measured}" if unmeasured else "")


def render_json(advice: Advice, target: str) -> str:
    doc = {
        "database": target,
        "method": advice.method,
        "selection": advice.selection,
        "window_hours": advice.window_hours,
        "explains": advice.explains,
        "recommendations": [recommendation_dict(r, advice) for r in advice.recommendations],
        "redundant": redundant_dicts(advice),
        "queries": [verdict_dict(v) for v in advice.verdicts],
    }
    return json.dumps(doc, indent=2, default=str)


def render_markdown(advice: Advice, target: str) -> str:
    lines = [f"# pgpulse advise: {target}", "", f"Verified with {advice.method}.", ""]
    if not advice.recommendations:
        lines += ["No index to add: every query read is already served, or no candidate met the cost factor.", ""]
    for i, r in enumerate(advice.recommendations, 1):
        lines += [f"## {i}. `{r.name}` on `{r.candidate.table.qualified}` (~{pretty_bytes(r.size_bytes)})", ""]
        lines += ["```sql", r.create_sql, "```", ""]
        for v in r.verdicts:
            lines.append(f"- `{shown(v)}` ({v.query.calls} calls): {v.reason}; {_speedup(v)}")
        lines += ["", f"Saving: {saving_text(r, advice)}", ""]
        lines += [f"Write cost: {r.write_note()}", "", "Alembic:", "", "```python", r.alembic(), "```", ""]
    if advice.redundant:
        lines += ["## made redundant by the advice", ""]
        lines += [
            f"- `{d.drop_sql}` (a prefix of `{index_name(d.because.table.name, d.because)}`)" for d in advice.redundant
        ] + [""]
    lines += ["## queries", "", "| status | query | reason |", "|---|---|---|"]
    for v in advice.verdicts:
        query = shown(v).replace("|", "\\|").replace("`", "'")
        reason = _reason(v)
        lines.append(f"| {v.status} | `{query}` | {reason.replace('|', '/')} |")
    return "\n".join(lines)


def render_table(advice: Advice, target: str, console: Console) -> None:
    console.print(f"[bold]pgpulse advise[/] {target} — verified with {advice.method}")
    if not advice.recommendations:
        console.print("[green]No index to add:[/] every query read is already served, or none met the cost factor.")
    for i, r in enumerate(advice.recommendations, 1):
        body = Table.grid(padding=(0, 1))
        body.add_column(style="bold", no_wrap=True)
        body.add_column()
        body.add_row("create", Syntax(r.create_sql, "sql", word_wrap=True, background_color="default"))
        for v in r.verdicts:
            body.add_row("serves", f"{escape(shown(v))}\n[dim]{escape(v.reason)}[/]\n{escape(_speedup(v))}")
        body.add_row("saving", escape(saving_text(r, advice)))
        body.add_row("size", f"~{pretty_bytes(r.size_bytes)}")
        body.add_row("write cost", r.write_note())
        body.add_row("alembic", Syntax(r.alembic(), "python", word_wrap=True, background_color="default"))
        console.print(Panel(body, title=f"{i}. {r.name}", title_align="left", border_style="green"))
    for d in advice.redundant:
        because = index_name(d.because.table.name, d.because)
        console.print(f"[yellow]redundant after this advice:[/] {escape(d.drop_sql)} (a prefix of {because})")
    table = Table(title="queries read", expand=True, show_lines=False)
    table.add_column("status", no_wrap=True)
    table.add_column("query", ratio=3)
    table.add_column("verdict", ratio=2)
    for v in advice.verdicts:
        style = STATUS_STYLE.get(v.status, "")
        reason = _reason(v)
        table.add_row(f"[{style}]{v.status}[/]", escape(shown(v)), escape(reason))
    console.print(table)
