"""The figures every pair reports, computed one way: percentiles, throughput and the spread between rounds.

Rounds exist because the machine is shared: one round's p50 can be off by tens of percent, so each variant
reports the median over rounds *and* how far the rounds were apart (``spread_pct``), and ratios are always
taken between variants measured in the same run.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from pgpulse.stats import percentile


@dataclass
class Round:
    """One timed round: each request's latency (ms) and the wall-clock seconds the round took."""

    latencies_ms: list[float]
    seconds: float
    errors: int = 0


@dataclass
class Variant:
    """One side of a before/after pair, aggregated over its rounds."""

    pair: str
    name: str
    concurrency: int | None = None
    queries: int | None = None
    n: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    throughput: float = 0.0  # requests (or rows, see unit) per second
    unit: str = "req/s"
    round_p50_ms: list[float] = field(default_factory=list)
    spread_pct: float = 0.0  # (max - min) / median of the rounds' p50s
    extra: dict[str, Any] = field(default_factory=dict)
    sample_ms: list[float] = field(default_factory=list)  # a bounded sample, for the plots only

    @property
    def key(self) -> str:
        return self.name if self.concurrency is None else f"{self.name} c={self.concurrency}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["key"] = self.key
        data.pop("sample_ms")
        return data


def summarize(
    pair: str,
    name: str,
    rounds: list[Round],
    *,
    concurrency: int | None = None,
    queries: int | None = None,
    unit: str = "req/s",
    items_per_request: float = 1.0,
    sample: int = 4000,
) -> Variant:
    """Aggregate rounds: percentiles over every request of every round, throughput as the median of rounds."""
    every = sorted(x for r in rounds for x in r.latencies_ms)
    round_p50 = [statistics.median(r.latencies_ms) for r in rounds if r.latencies_ms]
    throughputs = [len(r.latencies_ms) * items_per_request / r.seconds for r in rounds if r.seconds > 0]
    mid = statistics.median(round_p50) if round_p50 else 0.0
    spread = (max(round_p50) - min(round_p50)) / mid * 100 if len(round_p50) > 1 and mid else 0.0
    step = max(1, len(every) // sample)
    return Variant(
        pair=pair,
        name=name,
        concurrency=concurrency,
        queries=queries,
        n=len(every),
        errors=sum(r.errors for r in rounds),
        p50_ms=round(percentile(every, 50), 4),
        p95_ms=round(percentile(every, 95), 4),
        p99_ms=round(percentile(every, 99), 4),
        mean_ms=round(statistics.fmean(every), 4) if every else 0.0,
        throughput=round(statistics.median(throughputs), 2) if throughputs else 0.0,
        unit=unit,
        round_p50_ms=[round(x, 4) for x in round_p50],
        spread_pct=round(spread, 1),
        sample_ms=every[::step],
    )


# Two-sided 95 % quantiles of Student's t by degrees of freedom (1-30); beyond 30 the normal 1.96 is within 3 %.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """A mean with its 95 % confidence interval."""

    mean: float
    low: float
    high: float
    n: int


def mean_ci95(values: list[float]) -> Interval:
    """Mean and 95 % t-interval (mean ± t·s/√n) of independent measurements, e.g. per-round differences.

    Rounds, not requests, are the unit: requests inside one round share its noise (a neighbour's burst), so
    treating them as independent would give an interval far narrower than the truth. Needs two values."""
    n = len(values)
    if n < 2:
        raise ValueError("a confidence interval needs at least two rounds")
    mean = statistics.fmean(values)
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * statistics.stdev(values) / n**0.5
    return Interval(mean, mean - half, mean + half, n)


def ratio(after: float, before: float) -> float:
    """``after / before`` rounded for a report; 0 when ``before`` is 0 (nothing to compare against)."""
    return round(after / before, 3) if before else 0.0


@dataclass
class Target:
    """A claim with a number: ``value`` compared to ``threshold`` in direction ``op`` ('>=' or '<=')."""

    name: str
    value: float
    threshold: float
    op: str
    unit: str = "×"
    judged: bool = True  # False: shown, not judged (``reason`` says why, e.g. the cores were busy)
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class PairResult:
    """Everything one pair measured: its variants, the after/before ratios, targets and plain-text notes."""

    name: str
    title: str
    variants: list[Variant] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def variant(self, key: str) -> Variant:
        for v in self.variants:
            if v.key == key:
                return v
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "variants": [v.to_json() for v in self.variants],
            "ratios": self.ratios,
            "targets": [t.to_json() for t in self.targets],
            "facts": self.facts,
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
            "error": self.error,
        }
