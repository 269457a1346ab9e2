"""The dashboard's one coupling to the doctor: run its checks (read-only, their own session) and cache them.

A full audit is a dozen catalog queries; the Overview shows the last one for ``ttl`` seconds rather than
re-running it on every load, and one lock keeps two concurrent loads from running it twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pgpulse.doctor.check import Finding, Options, Severity
from pgpulse.doctor.runner import run_checks


@dataclass
class Findings:
    by_severity: list[tuple[str, list[Finding]]]  # most severe first, empty severities left out
    skipped: list[tuple[str, str]]  # (check title, why)
    taken_at: float

    def of_check(self, name: str) -> list[Finding]:
        return [f for _, found in self.by_severity for f in found if f.check == name]


class DoctorSource:
    def __init__(self, database_url: str, ttl: float = 60.0, options: Options | None = None) -> None:
        self.database_url = database_url
        self.options = options
        self.ttl = ttl
        self._last: Findings | None = None
        self._lock = asyncio.Lock()

    async def findings(self) -> Findings:
        async with self._lock:
            if self._last is None or time.monotonic() - self._last.taken_at > self.ttl:
                report = await run_checks(self.database_url, self.options)
                groups = []
                for severity in sorted(Severity, reverse=True):
                    found = [f for f in report.findings if f.severity == severity]
                    if found:
                        groups.append((str(severity), found))
                skipped = [(r.title, r.skipped) for r in report.results if r.skipped]
                self._last = Findings(groups, skipped, time.monotonic())
            return self._last
