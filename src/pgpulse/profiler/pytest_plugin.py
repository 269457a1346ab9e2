"""pytest plugin (entry point ``pytest11``): keep N+1s and query-count regressions out of main.

* ``assert_max_queries`` fixture: ``with assert_max_queries(3): ...`` fails when the block runs more
  statements than the budget, listing them.
* ``@pytest.mark.no_nplusone`` on a test, or ``--pgpulse-fail-on-nplusone`` for the whole run: the test
  fails when any N+1 is detected while it runs, with the relationship, the source line and the fix.

Both only see engines passed to ``pgpulse.profiler.instrument()`` (CitizenApp instruments its own).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from pgpulse.profiler.context import Record, profile

MARKER = "no_nplusone"
OPTION = "--pgpulse-fail-on-nplusone"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgpulse")
    group.addoption(
        OPTION,
        action="store_true",
        default=False,
        help="fail every test during which pgpulse detects an N+1 query pattern",
    )
    group.addoption(
        "--pgpulse-nplusone-threshold",
        type=int,
        default=5,
        help="repeats of one query shape that count as an N+1 (default 5)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(threshold=5): fail the test if pgpulse detects an N+1 query pattern during it"
    )


def _format_budget_failure(limit: int, record: Record) -> str:
    lines = [f"expected at most {limit} queries, {record.query_count} ran:"]
    for i, query in enumerate(record.queries, 1):
        lines.append(f"  {i:>3}. {' '.join(query.statement.split())[:200]}  ({query.duration_ms:.2f} ms)")
    if record.findings:
        lines.append("")
        lines.extend(f.describe() for f in record.findings)
    return "\n".join(lines)


@contextmanager
def _max_queries(limit: int, threshold: int = 5) -> Iterator[Record]:
    with profile(threshold=threshold) as record:
        yield record
    if record.query_count > limit:
        pytest.fail(_format_budget_failure(limit, record), pytrace=False)


@pytest.fixture
def assert_max_queries() -> Callable[..., AbstractContextManager[Record]]:
    """``with assert_max_queries(n):`` — the block may run at most ``n`` SQL statements."""
    return _max_queries


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    marker = item.get_closest_marker(MARKER)
    if marker is None and not item.config.getoption(OPTION):
        return (yield)
    threshold = int(
        marker.kwargs.get("threshold", item.config.getoption("--pgpulse-nplusone-threshold"))
        if marker is not None
        else item.config.getoption("--pgpulse-nplusone-threshold")
    )
    with profile(threshold=threshold) as record:
        result = yield
    if record.findings:
        details = "\n\n".join(f.describe() for f in record.findings)
        pytest.fail(f"pgpulse detected {len(record.findings)} N+1 pattern(s):\n{details}", pytrace=False)
    return result
