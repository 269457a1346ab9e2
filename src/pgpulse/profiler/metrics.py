"""Prometheus metrics: what a dashboard needs to see a regression before users do.

Created once per process on a registry of our own (``REGISTRY``), so instrumenting several engines or
apps (tests do) never registers a metric twice; ``metrics_app()`` serves it for an opt-in ``/metrics``.
"""

from __future__ import annotations

from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp

REGISTRY = CollectorRegistry(auto_describe=True)

QUERY_SECONDS = Histogram(
    "pgpulse_db_query_duration_seconds",
    "Duration of each SQL statement, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
QUERIES_PER_REQUEST = Histogram(
    "pgpulse_db_queries_per_request",
    "Number of SQL statements per HTTP request, by route.",
    ["route"],
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
NPLUSONE_FINDINGS = Counter(
    "pgpulse_nplusone_findings",
    "N+1 query patterns detected, by route and relationship (empty for explicit queries in a loop).",
    ["route", "relationship"],
    registry=REGISTRY,
)
SLOW_QUERIES = Counter(
    "pgpulse_slow_queries",
    "Statements slower than the slow-query threshold, by route.",
    ["route"],
    registry=REGISTRY,
)
POOL_CHECKED_OUT = Gauge(
    "pgpulse_db_pool_checked_out",
    "Connections currently checked out of the pool.",
    ["pool"],
    registry=REGISTRY,
)
POOL_WAIT_SECONDS = Histogram(
    "pgpulse_db_pool_checkout_wait_seconds",
    "Time spent waiting for a pooled connection (includes opening one when the pool grows).",
    ["pool"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

METRIC_NAMES = (
    "pgpulse_db_query_duration_seconds",
    "pgpulse_db_queries_per_request",
    "pgpulse_nplusone_findings_total",
    "pgpulse_slow_queries_total",
    "pgpulse_db_pool_checked_out",
    "pgpulse_db_pool_checkout_wait_seconds",
)


def metrics_app() -> ASGIApp:
    """An ASGI app serving the metrics in the Prometheus text format (mount it at ``/metrics``)."""
    return cast(ASGIApp, make_asgi_app(registry=REGISTRY))


def render() -> bytes:
    return generate_latest(REGISTRY)
