"""Audit many databases at once: ``pgpulse doctor URL URL …`` or ``--targets FILE`` (read by
:mod:`pgpulse.db.targets`, the format ``history collect --targets`` reads too).

Each database gets its own connection, its own time budget and its own report; they run concurrently
(bounded, so 50 databases on one server do not become 50 simultaneous heavy catalog scans). A database
that cannot be reached, or that does not finish within its budget, is a finding in its report — never
an abort of the others. A budget first skips the checks that would start after it ran out (the report
says so); a hard deadline a few seconds later cancels whatever still runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pgpulse.db.targets import Target
from pgpulse.doctor import DEFAULT_BUDGET_SECONDS, DEFAULT_CONCURRENCY
from pgpulse.doctor.check import Finding, Options, Severity
from pgpulse.doctor.runner import ConnectError, Report, run_checks
from pgpulse.sql import redact_text, redact_url

HARD_DEADLINE_GRACE = 5.0


@dataclass
class Audit:
    """One database's outcome: its report, or why there is none (as a finding)."""

    target: Target
    report: Report | None = None
    failure: Finding | None = None
    seconds: float = 0.0

    @property
    def shown(self) -> str:
        return redact_url(self.target.url)

    @property
    def findings(self) -> list[Finding]:
        own = self.report.findings if self.report is not None else []
        return own + ([self.failure] if self.failure is not None else [])

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)


def _failure(title: str, fix: str | None = None) -> Finding:
    return Finding(check="connect", severity=Severity.critical, object="database", title=title, fix=fix)


async def audit_one(target: Target, options: Options, budget_seconds: float) -> Audit:
    began = time.perf_counter()
    audit = Audit(target)
    try:
        async with asyncio.timeout(budget_seconds + HARD_DEADLINE_GRACE):
            audit.report = await run_checks(target.url, options, budget_seconds=budget_seconds)
    except ConnectError as exc:
        audit.failure = _failure(f"cannot audit: {redact_text(str(exc))}")
    except TimeoutError:
        audit.failure = _failure(f"the audit did not finish within its {budget_seconds:g} s budget")
    audit.seconds = time.perf_counter() - began
    if audit.report is not None:
        ran_out = [r.name for r in audit.report.results if r.skipped and "time budget" in r.skipped]
        if ran_out:
            audit.failure = Finding(
                check="connect",
                severity=Severity.warning,
                object="database",
                title=f"the {budget_seconds:g} s budget ran out before {len(ran_out)} check(s): " + ", ".join(ran_out),
                fix="Raise --time-budget for this database.",
            )
    return audit


async def audit_fleet(
    targets: Sequence[Target],
    options: Options | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
) -> list[Audit]:
    """Every target audited, in the order given; at most ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    opts = options or Options()

    async def one(target: Target) -> Audit:
        async with gate:
            return await audit_one(target, opts, budget_seconds)

    return list(await asyncio.gather(*(one(t) for t in targets)))


@dataclass
class FleetSummary:
    databases: int
    by_worst: dict[str, int] = field(default_factory=dict)  # "critical"/"warning"/"info"/"clean" → count
    unreachable: int = 0
    seconds: float = 0.0

    @property
    def worst(self) -> Severity | None:
        present = [s for s in Severity if self.by_worst.get(str(s))]
        return max(present, default=None)


def summarize(audits: Sequence[Audit], seconds: float) -> FleetSummary:
    summary = FleetSummary(databases=len(audits), seconds=seconds)
    for audit in audits:
        key = str(audit.worst) if audit.worst is not None else "clean"
        summary.by_worst[key] = summary.by_worst.get(key, 0) + 1
        summary.unreachable += audit.report is None
    return summary
