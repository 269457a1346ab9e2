"""Prometheus metrics: what a dashboard needs to see a regression before users do.

Created once per process on a registry of our own (``REGISTRY``), so instrumenting several engines or
apps (tests do) never registers a metric twice; ``metrics_app()`` serves it, and ``MetricsEndpoint`` answers an
opt-in ``/metrics`` outside the profiler.

Many workers (``uvicorn --workers N``, gunicorn): with ``PROMETHEUS_MULTIPROC_DIR`` set before the app starts,
prometheus-client keeps every value in a per-process file and ``metrics_app()`` serves the sums over all
workers' files (``MultiProcessCollector``), whichever worker answers the scrape. Custom collectors are not
read from those files, so the two histograms fed per request (query durations, queries per request) then count in
memory and a flusher thread adds the counts to prometheus-client's own values files every second
(:class:`FileRouteDurations`); the counters and the gauge are prometheus-client's own, written as they change.
"""

from __future__ import annotations

import atexit
import itertools
import math
import os
import struct
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app, make_wsgi_app, values
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pgpulse.errors import UserError
from pgpulse.types import ASGIApp, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)
_le = cast(Callable[[float], str], floatToGoString)  # "0.005", "+Inf": the label text Histogram itself uses


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode (None: not set)."""
    legacy = os.environ.get("prometheus_multiproc_dir")  # noqa: SIM112 - the name prometheus-client still honours
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or legacy or None


# What prometheus-client decided when it was first imported (from PROMETHEUS_MULTIPROC_DIR): every value it makes
# from now on lives either in memory or in this process's files, so ours must follow the same choice.
MULTIPROCESS: bool = bool(getattr(values.ValueClass, "_multiprocess", False))


class RouteDurations(Collector):
    """A histogram by route, fed a whole request's query durations at once.

    Why not ``prometheus_client.Histogram``: its ``observe`` takes two locks per value (bucket and sum),
    ≈ 0.8 µs of every query's ≈ 3 µs profiler cost. This keeps plain counters, takes one lock per request,
    and is exported through prometheus-client's documented custom-collector interface, so a scrape sees an
    ordinary histogram (``_bucket`` with ``le``, ``_sum``, ``_count``).
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = (*buckets, math.inf)
        self._lock = threading.Lock()
        # (route, method) → (counts per bucket, [sum])
        self._series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe_many(self, route: str, values: list[float], method: str = "") -> None:
        indices = [bisect_left(self.bounds, v) for v in values]
        total = sum(values)
        key = (route, method)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = ([0] * len(self.bounds), [0.0])
            counts = series[0]
            for index in indices:
                counts[index] += 1
            series[1][0] += total

    def observe(self, route: str, value: float, method: str = "") -> None:
        self.observe_many(route, [value], method)

    def observe_counted(self, route: str, counts: list[int], total: float, method: str = "") -> None:
        """Add values already counted per bucket (``counts[i]`` values fell in bucket ``i`` of ``bounds``, as
        ``bisect_left`` places them) summing to ``total``: a record's statements past its cap."""
        key = (route, method)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = ([0] * len(self.bounds), [0.0])
            mine = series[0]
            for index, n in enumerate(counts):
                mine[index] += n
            series[1][0] += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["route", "method"])
        with self._lock:
            snapshot = [(key, list(counts), sums[0]) for key, (counts, sums) in self._series.items()]
        for (route, method), counts, total in snapshot:
            cumulative = list(itertools.accumulate(counts))
            buckets = [(_le(bound), float(n)) for bound, n in zip(self.bounds, cumulative, strict=True)]
            family.add_metric([route, method], buckets, total)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=["route", "method"])


class _Value(Protocol):
    """One of prometheus-client's values (``values.MutexValue``, or the multiprocess mode's file entry)."""

    def inc(self, amount: float) -> None: ...


ValueFactory = Callable[..., _Value]


class FileRouteDurations(RouteDurations):
    """:class:`RouteDurations` for prometheus-client's multiprocess mode: counted in memory exactly the same
    way, and added to this process's ``histogram_<pid>.db`` at most ``flush_interval`` seconds later, where
    ``MultiProcessCollector`` (whichever worker answers the scrape) sums it with every other worker's.

    The file holds prometheus-client's own value objects (``values.ValueClass``), laid out exactly as a
    ``Histogram`` child lays out its values (non-cumulative ``_bucket`` values with ``le``, and ``_sum``), so the
    collector accumulates them as it would a ``Histogram``'s and derives ``_count`` from the ``+Inf`` bucket.

    Why not write the file per request: each write takes prometheus-client's process-wide lock and a ``getpid``
    (measured ≈ 1-4 µs each on 2 busy cores, against ≈ 0.5 µs in memory); a 3-query request touching 2-3
    buckets would pay more for its histogram than for the rest of the profiler. A daemon thread, started by the
    first observation in each process (so after a fork too), adds what was counted since the last flush; a
    process that dies loses at most ``flush_interval`` seconds of this one histogram.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: tuple[float, ...],
        value_class: ValueFactory | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        super().__init__(name, documentation, buckets)
        self._les = tuple(_le(bound) for bound in self.bounds)
        # None: prometheus-client's class, read when a series is first written, as Histogram does.
        self._value_class = value_class
        self._files: dict[tuple[str, str], tuple[list[_Value], _Value]] = {}
        self._flush_lock = threading.Lock()
        self.flush_interval = flush_interval
        self._pid: int | None = None  # the process whose flusher runs
        after_fork = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (method := after_fork()) is not None and method())

    def observe_many(self, route: str, values: list[float], method: str = "") -> None:
        if self._pid is None:
            self._start_flusher()
        super().observe_many(route, values, method)

    def observe_counted(self, route: str, counts: list[int], total: float, method: str = "") -> None:
        if self._pid is None:
            self._start_flusher()
        super().observe_counted(route, counts, total, method)

    def _start_flusher(self) -> None:
        with self._flush_lock:
            if self._pid is None:
                self._pid = os.getpid()
                threading.Thread(target=self._flush_forever, name="pgpulse-metrics-flush", daemon=True).start()

    def _after_fork(self) -> None:
        """In a forked child (gunicorn ``--preload``): what the parent counted is the parent's to flush, its file
        values are its own, its flusher thread did not come along, and a lock it held at the fork stays held."""
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._series = {}
        self._files = {}
        self._pid = None

    def _flush_forever(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self.flush_interval)
            self.flush()

    def flush(self) -> None:
        """Add everything counted since the last flush to this process's file (tests and shutdown call it)."""
        with self._flush_lock:
            with self._lock:
                pending, self._series = self._series, {}
            for key, (counts, total) in pending.items():
                buckets, sum_value = self._files.get(key) or self._file_series(key)
                for index, n in enumerate(counts):
                    if n:
                        buckets[index].inc(n)
                sum_value.inc(total[0])

    def _file_series(self, key: tuple[str, str]) -> tuple[list[_Value], _Value]:
        value_class = self._value_class or cast(ValueFactory, values.ValueClass)
        labels, label_values, doc = ["route", "method"], list(key), self.documentation
        buckets = [
            value_class("histogram", self.name, self.name + "_bucket", [*labels, "le"], [*label_values, le], doc)
            for le in self._les
        ]
        series = self._files[key] = (
            buckets,
            value_class("histogram", self.name, self.name + "_sum", labels, label_values, doc),
        )
        return series


_QUERY_SECONDS_ARGS = (
    "pgpulse_db_query_duration_seconds",
    "Duration of each SQL statement, by route template and HTTP method.",
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUERY_SECONDS: RouteDurations | FileRouteDurations
if MULTIPROCESS:
    QUERY_SECONDS = FileRouteDurations(*_QUERY_SECONDS_ARGS)
    atexit.register(QUERY_SECONDS.flush)  # a worker stopping cleanly leaves nothing unwritten
else:
    QUERY_SECONDS = RouteDurations(*_QUERY_SECONDS_ARGS)
    REGISTRY.register(QUERY_SECONDS)


class _RouteChild:
    def __init__(self, histogram: FileRouteDurations, route: str, method: str) -> None:
        self._histogram, self._route, self._method = histogram, route, method

    def observe(self, value: float) -> None:
        self._histogram.observe_many(self._route, [value], self._method)


class FileRouteHistogram(FileRouteDurations):
    """A :class:`FileRouteDurations` with ``Histogram``'s ``labels(route, method).observe(value)`` face: one per
    request, so in multiprocess mode the request pays a dict increment instead of two file writes."""

    def labels(self, route: str, method: str) -> _RouteChild:
        return _RouteChild(self, route, method)


_QUERIES_PER_REQUEST_ARGS = (
    "pgpulse_db_queries_per_request",
    "Number of SQL statements per HTTP request, by route template and HTTP method.",
    (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000),
)
QUERIES_PER_REQUEST: Histogram | FileRouteHistogram
if MULTIPROCESS:
    QUERIES_PER_REQUEST = FileRouteHistogram(*_QUERIES_PER_REQUEST_ARGS)
    atexit.register(QUERIES_PER_REQUEST.flush)
else:
    QUERIES_PER_REQUEST = Histogram(
        *_QUERIES_PER_REQUEST_ARGS[:2], ["route", "method"], buckets=_QUERIES_PER_REQUEST_ARGS[2], registry=REGISTRY
    )
NPLUSONE_FINDINGS = Counter(
    "pgpulse_nplusone_findings",
    "N+1 query patterns detected, by route, method and relationship (empty for explicit queries in a loop).",
    ["route", "method", "relationship"],
    registry=REGISTRY,
)
SLOW_QUERIES = Counter(
    "pgpulse_slow_queries",
    "Statements slower than the slow-query threshold, by route and method.",
    ["route", "method"],
    registry=REGISTRY,
)
UNUSED_EAGER_LOADS = Counter(
    "pgpulse_unused_eager_loads",
    "Eager-load options whose relationship nothing read, by route, method and relationship.",
    ["route", "method", "relationship"],
    registry=REGISTRY,
)
FAILED_QUERIES = Counter(
    "pgpulse_failed_queries",
    "Statements that failed (timeouts, errors), by route, method and error class.",
    ["route", "method", "error"],
    registry=REGISTRY,
)
POOL_CHECKED_OUT = Gauge(
    "pgpulse_db_pool_checked_out",
    "Connections currently checked out of the pool.",
    ["pool"],
    registry=REGISTRY,
    multiprocess_mode="livesum",  # many workers: the sum over the live ones (gunicorn's child_exit drops the dead)
)
POOL_WAIT_SECONDS = Histogram(
    "pgpulse_db_pool_checkout_wait_seconds",
    "Time spent waiting for a pooled connection (includes opening one when the pool grows).",
    ["pool"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
NEW_CONNECTIONS = Counter(
    "pgpulse_db_new_connections",
    "New database connections opened (DBAPI connects), by pool name: on a pool that keeps its connections it stops "
    "growing after the warm-up.",
    ["pool"],
    registry=REGISTRY,
)

METRIC_NAMES = (
    "pgpulse_db_query_duration_seconds",
    "pgpulse_db_queries_per_request",
    "pgpulse_nplusone_findings_total",
    "pgpulse_slow_queries_total",
    "pgpulse_unused_eager_loads_total",
    "pgpulse_failed_queries_total",
    "pgpulse_db_pool_checked_out",
    "pgpulse_db_pool_checkout_wait_seconds",
    "pgpulse_db_new_connections_total",
)


def serving_registry() -> CollectorRegistry:
    """What a scrape reads: this process's ``REGISTRY``, or in multiprocess mode a registry that sums every
    worker's files (prometheus-client's documented setup: a fresh ``CollectorRegistry`` per app, holding only a
    ``MultiProcessCollector``, since the per-process metrics are in the files)."""
    if not MULTIPROCESS:
        return REGISTRY
    path = multiprocess_dir()
    if path is None or not os.path.isdir(path):
        raise UserError(
            f"PROMETHEUS_MULTIPROC_DIR is {path!r}, not a directory: create it (empty) before the workers start"
        )
    registry = CollectorRegistry()
    _SettledMultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


class _SettledMultiProcessCollector(MultiProcessCollector):
    """prometheus-client's collector, reading again when a worker's file is caught between its creation and its
    header being written (``struct.error`` from the half-initialised mmap): without it, a worker starting while
    Prometheus scrapes turns that scrape into a 500. A few short retries, then the error stands."""

    ATTEMPTS = 5

    def collect(self) -> Any:
        for attempt in range(self.ATTEMPTS):
            try:
                return list(super().collect())  # type: ignore[no-untyped-call]
            except struct.error:
                if attempt == self.ATTEMPTS - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))  # the writer finishes its header in microseconds
        raise AssertionError("unreachable")


def metrics_app() -> ASGIApp:
    """An ASGI app serving the metrics in the Prometheus text format (mount it at ``/metrics``); under
    ``PROMETHEUS_MULTIPROC_DIR`` the sums over every worker."""
    return cast(ASGIApp, make_asgi_app(registry=serving_registry()))


def metrics_wsgi_app() -> Callable[..., Any]:
    """The same for a WSGI app (Flask: ``DispatcherMiddleware(app.wsgi_app, {"/metrics": metrics_wsgi_app()})``)."""
    return make_wsgi_app(registry=serving_registry())


def render() -> bytes:
    """The metrics in the Prometheus text format (the WSGI middleware's ``/metrics``, tests)."""
    return generate_latest(serving_registry())


class MetricsEndpoint:
    """Pure ASGI middleware answering ``path`` (and ``path/``) with the exposition before the app it wraps.

    Why not ``app.mount("/metrics", metrics_app())``: a mount matches ``/metrics/...`` only, so a scrape of
    ``/metrics`` was a 307 to ``/metrics/`` first; and the mounted app sat inside the profiler's middleware, so
    every scrape was a request record of its own, a route label in the very metrics it served. Add this after
    ``PgPulseMiddleware`` (Starlette: the last added is the outermost) and scrapes never reach the profiler.
    """

    def __init__(self, app: ASGIApp, *, path: str = "/metrics") -> None:
        self.app = app
        self.paths = frozenset({path.rstrip("/"), path.rstrip("/") + "/"})
        self.metrics = metrics_app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._local_path(scope) in self.paths:
            await self.metrics(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _local_path(scope: Scope) -> str:
        """The path below ``root_path`` (servers differ on whether ``path`` carries it)."""
        path: str = scope.get("path") or ""
        root: str = scope.get("root_path") or ""
        return path[len(root) :] if root and path.startswith(root) else path
