"""The integrations benchmark's statistics and variant registry (the run itself: ``python -m
pgpulse.bench.integrations``; its children need no database)."""

from __future__ import annotations

import pytest

from pgpulse.bench.integrations import VARIANTS, Variant, available, median_ci


@pytest.mark.parametrize(
    ("n", "low_rank", "high_rank"),
    [
        (6, 1, 6),  # P(Binomial(6, 1/2) = 0) = 1/64 ≤ 2.5 %: the extremes already cover the median at 95 %
        (15, 4, 12),  # the textbook interval for n = 15: 4th and 12th order statistics (96.5 % coverage)
        (20, 6, 15),
    ],
)
def test_median_interval_is_the_binomial_order_statistics(n: int, low_rank: int, high_rank: int) -> None:
    values = [float(v) for v in range(1, n + 1)]  # each value is its own rank
    median, low, high = median_ci(list(reversed(values)))
    assert (low, high) == (low_rank, high_rank)
    assert median == (n + 1) / 2


def test_too_few_rounds_give_the_whole_range() -> None:
    assert median_ci([3.0, 1.0, 2.0, 5.0, 4.0]) == (3.0, 1.0, 5.0)  # n = 5: even the extremes cover only 93.75 %


def test_a_variant_whose_module_is_missing_is_skipped_with_a_note() -> None:
    missing = Variant("x", "asgi", requires=("pgpulse.profiler.no_such_exporter",))
    assert available(missing) == "skipped x: pgpulse.profiler.no_such_exporter is not installed"
    names = {v.name for v in VARIANTS}
    assert all(v.baseline in names for v in VARIANTS if v.baseline)  # each compared with a variant that exists
    assert available(next(v for v in VARIANTS if v.name == "profiler + multiprocess Prometheus")) is None


def test_only_selects_variants_with_their_baselines() -> None:
    from pgpulse.bench.integrations import OFF_ASGI, OTEL_ONLY, selected

    assert [v.name for v in selected(["opentelemetry"])] == [OFF_ASGI, OTEL_ONLY, "profiler + OpenTelemetry"]
    assert [v.name for v in selected(["WSGI middleware"])] == ["off (WSGI)", "profiler (WSGI middleware)"]
    assert selected(None) == VARIANTS
