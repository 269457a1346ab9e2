"""pytest plugin (entry point ``pytest11``): keep N+1s and query-count regressions out of main.

* ``assert_max_queries`` fixture: ``with assert_max_queries(3): ...`` fails when the block runs more
  statements than the budget, listing their shapes.
* ``@pytest.mark.no_nplusone`` on a test, or ``--pgpulse-fail-on-nplusone`` for the whole run: the test
  fails when any N+1 is detected while it runs, with the relationship, the source line and the fix.
* Query-count snapshots: ``--pgpulse-record`` writes each test's query count, statement shapes and N+1s to
  the snapshot file (ini ``pgpulse_snapshot_file``, default ``pgpulse-queries.json`` in the rootdir), to be
  committed with the tests; later runs fail a test that runs more queries, or a new N+1, than recorded.
* Allow-list for known, accepted N+1s, by relationship (``Item.owner``) or fingerprint: the ini option
  ``pgpulse_allow`` (one per line) and the marker ``@pytest.mark.pgpulse_allow("Item.owner", ...)``.

All of it only sees engines passed to ``pgpulse.profiler.instrument()``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest session of every project with pgpulse installed:
    # SQLAlchemy, pglast and Prometheus are imported only once a test uses the profiler
    from pgpulse.profiler.context import Record
    from pgpulse.profiler.snapshots import Snapshot

MARKER = "no_nplusone"
ALLOW_MARKER = "pgpulse_allow"
OPTION = "--pgpulse-fail-on-nplusone"
RECORD = "--pgpulse-record"
SNAPSHOT_INI = "pgpulse_snapshot_file"
ALLOW_INI = "pgpulse_allow"
_SNAPSHOTS = pytest.StashKey[dict[str, "Snapshot"]]()
_RECORDED = pytest.StashKey[dict[str, "Snapshot"]]()


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
        default=None,
        help="repeats of one query shape that count as an N+1 (default: each engine's, as given to instrument())",
    )
    group.addoption(
        RECORD,
        action="store_true",
        default=False,
        help="write each test's query count and shapes to the snapshot file (commit it with the tests)",
    )
    parser.addini(SNAPSHOT_INI, "query-count snapshot file, relative to the rootdir", default="pgpulse-queries.json")
    parser.addini(ALLOW_INI, "known, accepted N+1s: relationships (Item.owner) or fingerprints", type="linelist")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(threshold=None): fail the test if pgpulse detects an N+1 query pattern during it"
    )
    config.addinivalue_line(
        "markers", f"{ALLOW_MARKER}(*names): known, accepted N+1s of this test (relationships or fingerprints)"
    )
    path = _snapshot_path(config)
    if path.exists():
        from pgpulse.profiler import snapshots

        config.stash[_SNAPSHOTS] = snapshots.load(path)
    else:
        config.stash[_SNAPSHOTS] = {}
    config.stash[_RECORDED] = {}


def _snapshot_path(config: pytest.Config) -> Path:
    return Path(config.rootpath) / str(config.getini(SNAPSHOT_INI))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not config.getoption(RECORD) or not config.stash.get(_RECORDED, None):
        return
    from pgpulse.profiler import snapshots

    previous: dict[str, Snapshot] = config.stash[_SNAPSHOTS]
    taken: dict[str, Snapshot] = config.stash[_RECORDED]
    merged = {**previous, **taken}
    snapshots.save(_snapshot_path(config), merged)


def _format_budget_failure(limit: int, record: Record) -> str:
    from pgpulse.profiler.statements import shape

    lines = [f"expected at most {limit} queries, {record.query_count} ran:"]
    for i, query in enumerate(record.queries, 1):
        lines.append(f"  {i:>3}. {shape(query.statement)}  ({query.duration_ms:.2f} ms)")
    if record.dropped:
        lines.append(f"  … and {record.dropped} more, not kept (a record keeps its first {len(record.queries)})")
    if record.findings:
        lines.append("")
        lines.extend(f.describe() for f in record.findings)
    return "\n".join(lines)


@contextmanager
def _max_queries(limit: int, threshold: int | None = None) -> Iterator[Record]:
    from pgpulse.profiler.context import profile

    with profile(threshold=threshold) as record:
        yield record
    if record.query_count > limit:
        pytest.fail(_format_budget_failure(limit, record), pytrace=False)


@pytest.fixture
def assert_max_queries() -> Callable[..., AbstractContextManager[Record]]:
    """``with assert_max_queries(n):`` — the block may run at most ``n`` SQL statements."""
    return _max_queries


def _allow_list(item: pytest.Item) -> set[str]:
    allow = {str(name) for name in item.config.getini(ALLOW_INI)}
    for marker in item.iter_markers(ALLOW_MARKER):
        allow.update(str(name) for name in marker.args)
    return allow


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    config = item.config
    marker = item.get_closest_marker(MARKER)
    fail_on_nplusone = marker is not None or bool(config.getoption(OPTION))
    recording = bool(config.getoption(RECORD))
    recorded = config.stash[_SNAPSHOTS].get(item.nodeid)
    if not fail_on_nplusone and not recording and recorded is None:
        return (yield)
    threshold = config.getoption("--pgpulse-nplusone-threshold")
    if marker is not None and "threshold" in marker.kwargs:
        threshold = int(marker.kwargs["threshold"])
    from pgpulse.profiler import snapshots
    from pgpulse.profiler.context import profile

    with profile(threshold=threshold) as record:
        result = yield
    allow = _allow_list(item)
    now = snapshots.take(record)
    if recording:
        config.stash[_RECORDED][item.nodeid] = now
    elif recorded is not None:
        regression = snapshots.compare(item.nodeid, recorded, now, record, allow)
        if regression is not None:
            pytest.fail(regression, pytrace=False)
    if fail_on_nplusone:
        findings = [f for f in record.findings if not snapshots.allowed(f, allow)]
        if findings:
            details = "\n\n".join(f.describe() for f in findings)
            pytest.fail(f"pgpulse detected {len(findings)} N+1 pattern(s):\n{details}", pytrace=False)
    return result
