"""The profiler's CPU cost with a confidence interval: the t-interval and the per-round pairing, by hand."""

from __future__ import annotations

import pytest

from pgpulse.bench.loadgen import LoadResult
from pgpulse.bench.profiler_overhead import cpu_cost
from pgpulse.bench.stats import Round, mean_ci95


def test_t_interval_of_five_values_matches_the_textbook() -> None:
    # mean 3, s = sqrt(2.5) = 1.5811, s/sqrt(5) = 0.70711, t(0.975, 4) = 2.776 -> half width 1.96293
    ci = mean_ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ci.n == 5 and ci.mean == 3.0
    assert ci.low == pytest.approx(3.0 - 1.96293, abs=1e-4) and ci.high == pytest.approx(3.0 + 1.96293, abs=1e-4)


def test_beyond_thirty_rounds_the_normal_quantile_is_used() -> None:
    values = [float(i % 2) for i in range(40)]  # mean 0.5, s = sqrt(40 * 0.25 / 39) = 0.50637
    ci = mean_ci95(values)
    assert ci.high - ci.mean == pytest.approx(1.96 * 0.50637 / 40**0.5, abs=1e-4)


def test_one_round_has_no_interval() -> None:
    with pytest.raises(ValueError, match="at least two rounds"):
        mean_ci95([1.0])


def _load(cpu_s: float, total: int) -> LoadResult:
    return LoadResult(Round([1.0], 1.0), None, {"200": total}, total, server_cpu_s=cpu_s)


def test_profiler_cost_pairs_rounds_and_scales_the_interval() -> None:
    # on: 12 and 11 ms of CPU per request, off: 10 and 10 -> differences 2 and 1 ms: mean 1.5,
    # s = 0.70711, s/sqrt(2) = 0.5, t(0.975, 1) = 12.706 -> 1.5 ± 6.353 ms
    on = [_load(1.2, 100), _load(1.1, 100)]
    off = [_load(1.0, 100), _load(1.0, 100)]
    cost = cpu_cost(on, off, queries=3)
    assert cost is not None
    assert cost["cpu_off_ms_per_request"] == 10.0 and cost["cpu_rounds"] == 2
    assert cost["cpu_added_ms_per_request"] == [1.5, -4.853, 7.853]
    assert cost["cpu_added_pct"] == [15.0, -48.53, 78.53]  # relative to the 10 ms without the profiler
    assert cost["cpu_added_us_per_query"] == [500.0, -1617.67, 2617.67]  # 3 queries per request


def test_profiler_cost_needs_the_server_cpu_of_two_rounds() -> None:
    unknown = LoadResult(Round([1.0], 1.0), None, {}, 100, server_cpu_s=None)
    assert cpu_cost([unknown, unknown], [_load(1.0, 100), _load(1.0, 100)], queries=3) is None
