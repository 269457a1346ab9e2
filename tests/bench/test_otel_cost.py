"""``pgpulse.bench.otel_cost``: the interval it reports around a median, and one tiny measurement end to end."""

from __future__ import annotations

from pgpulse.bench.otel_cost import VARIANTS, WORKLOADS, measure, median_interval


def test_median_interval_is_the_order_statistics_of_the_binomial_tables() -> None:
    # Tables of the sign test: for n = 31 the 95 % interval of the median is [x(10), x(22)]; for n = 9, [x(2), x(8)]
    assert median_interval([float(i) for i in range(31, 0, -1)]) == (16.0, 10.0, 22.0)
    assert median_interval([float(i) for i in range(1, 10)]) == (5.0, 2.0, 8.0)
    assert median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)  # too few rounds for 95 %: the whole range


def test_a_tiny_run_reports_every_variant_of_every_workload() -> None:
    summary = measure(rounds=3, per_round={"selectin": 2, "lazy": 1})
    assert set(summary["workloads"]) == set(WORKLOADS)
    for name, data in summary["workloads"].items():
        assert data["queries"] == len(WORKLOADS[name]) and data["off_us_per_request"] > 0
        assert list(data["added"]) == list(VARIANTS[1:])
        for row in data["added"].values():
            low, high = row["us_per_request"][1], row["us_per_request"][2]
            assert low <= row["us_per_request"][0] <= high
    assert summary["span_start_end_us"] > 0
