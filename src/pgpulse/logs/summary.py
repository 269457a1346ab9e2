"""Group timed statements by query shape (pglast fingerprint) and rank them, as pgBadger would.

``parse``/``bind`` entries of the extended protocol are the planning and binding of the same statement the
``execute`` entry times; counting them would count one query three times, so they are left out of the
ranking (their time is small and already inside the client's round trip).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pgpulse.logs.parse import LogEntry
from pgpulse.sql import fingerprint, normalize
from pgpulse.stats import percentile

COUNTED_KINDS = ("statement", "execute", "plan", "duration")


class SortKey(StrEnum):
    total = "total"
    mean = "mean"
    calls = "count"
    p95 = "p95"
    max = "max"


@dataclass
class QueryStats:
    fingerprint: str
    query: str  # normalized: constants replaced by $n, never a parameter value
    durations: list[float] = field(default_factory=list)
    plan: str | None = None  # the slowest auto_explain plan seen for this query
    plan_ms: float = 0.0

    @property
    def count(self) -> int:
        return len(self.durations)

    @property
    def total(self) -> float:
        return sum(self.durations)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.durations else 0.0

    @property
    def max(self) -> float:
        return max(self.durations, default=0.0)

    @property
    def p95(self) -> float:
        return percentile(sorted(self.durations), 95)  # nearest rank: a duration that really occurred

    def as_dict(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "query": self.query,
            "count": self.count,
            "total_ms": round(self.total, 3),
            "mean_ms": round(self.mean, 3),
            "p95_ms": round(self.p95, 3),
            "max_ms": round(self.max, 3),
            "plan": self.plan,
        }


def summarize(entries: Iterable[LogEntry], min_duration_ms: float = 0.0) -> list[QueryStats]:
    """One QueryStats per query shape.

    A ``plan`` entry (auto_explain) counts as one execution and keeps its plan. When the statement also
    exceeded ``log_min_duration_statement``, PostgreSQL logs the plan (at executor end) and then, from the same
    backend, the statement's duration line: that pair is one execution, so the plan is attached to the
    statement line that follows it on the same pid instead of being counted twice.
    """
    groups: dict[str, QueryStats] = {}
    pending: dict[int | None, tuple[QueryStats, LogEntry]] = {}  # pid -> plan awaiting its statement line
    for entry in entries:
        if entry.kind not in COUNTED_KINDS:
            continue
        stats = _group(groups, entry)
        waiting = pending.pop(entry.pid, None)
        if entry.kind == "plan":
            if waiting is not None:
                _count(*waiting, min_duration_ms)
            pending[entry.pid] = (stats, entry)
            continue
        if waiting is not None:
            if waiting[0] is stats:
                _attach(stats, waiting[1])
            else:
                _count(*waiting, min_duration_ms)
        if entry.duration_ms >= min_duration_ms:
            stats.durations.append(entry.duration_ms)
    for waiting in pending.values():
        _count(*waiting, min_duration_ms)
    return [s for s in groups.values() if s.durations]


def _attach(stats: QueryStats, entry: LogEntry) -> None:
    if entry.plan and entry.duration_ms >= stats.plan_ms:
        stats.plan, stats.plan_ms = entry.plan, entry.duration_ms


def _count(stats: QueryStats, entry: LogEntry, min_duration_ms: float) -> None:
    if entry.duration_ms >= min_duration_ms:
        stats.durations.append(entry.duration_ms)
        _attach(stats, entry)


def _group(groups: dict[str, QueryStats], entry: LogEntry) -> QueryStats:
    text = entry.statement or "(duration only: no statement text)"
    key = fingerprint(text)
    stats = groups.get(key)
    if stats is None:
        stats = groups[key] = QueryStats(fingerprint=key, query=normalize(text))
    return stats


def rank(stats: list[QueryStats], by: SortKey, top: int | None) -> list[QueryStats]:
    ordered = sorted(stats, key=lambda s: (getattr(s, by.value), s.count), reverse=True)
    return ordered[:top] if top else ordered
