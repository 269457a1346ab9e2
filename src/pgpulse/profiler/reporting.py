"""What happens when a request's record closes: the Prometheus metrics, the structlog events, and the
``on_record`` hooks that hand the record to whatever else wants it (the dashboard's Requests ring, the
OpenTelemetry and Sentry exporters, a user's own callback).

Shared by the ASGI and the WSGI middleware, so both report the same records and findings the same way. A hook
that raises is logged once per call and never breaks the request: the response has gone out already, and an
exporter's bug must not turn a 200 into a 500.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import structlog

from pgpulse.profiler import metrics
from pgpulse.profiler.context import NewConnections, Record
from pgpulse.profiler.routes import UNMATCHED

log = structlog.get_logger("pgpulse.profiler")

RecordHook = Callable[[Record], None]
"""Called once per closed request record, after the findings are detected, inside the request's context.

A hook with a true ``at_response_end`` attribute (the OpenTelemetry exporter) is called earlier instead: with
the still-open record, just before the response's last body message goes out. OpenTelemetry's ASGI middleware
ends its server span as that message passes, before the app call returns and the record closes; a hook that
writes onto the span must run before that. If no response body is sent (the app raised, the client left), it
is called with the closed record like the others."""


def runs_at_response_end(hook: RecordHook) -> bool:
    return bool(getattr(hook, "at_response_end", False))


def as_hooks(on_record: RecordHook | Sequence[RecordHook] | None) -> tuple[RecordHook, ...]:
    """Normalise the middleware's ``on_record`` argument: one callable, several, or none."""
    if on_record is None:
        return ()
    if callable(on_record):
        return (on_record,)
    hooks = tuple(on_record)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"on_record takes callables (record) -> None, got {type(hook).__name__}")
    return hooks


def report(record: Record, *, log_findings: bool, hooks: Sequence[RecordHook] = ()) -> None:
    """Metrics and log events for one closed request record, then each hook."""
    route = record.route_name() or UNMATCHED
    method = record.method or ""
    metrics.QUERIES_PER_REQUEST.labels(route, method).observe(record.query_count)
    for error, failed in record.failed_by_error.items():  # those past the record's cap too
        metrics.FAILED_QUERIES.labels(route, method, error).inc(failed)
    for finding in record.findings:
        metrics.NPLUSONE_FINDINGS.labels(route, method, finding.relationship or "").inc()
        if log_findings:
            fields: dict[str, Any] = {
                "route": route,
                "method": method,
                "fingerprint": finding.fingerprint,
                "count": finding.count,
                "duration_ms": round(finding.total_ms, 3),
                "relationship": finding.relationship,
                "loaded_via": finding.loaded_via,
                "source": str(finding.site) if finding.site else None,
                "during_serialization": finding.during_serialization,
                "statement": finding.statement,
                "fix": finding.fix,
            }
            log.warning("n_plus_one", **fields)
    for unused in record.unused:
        metrics.UNUSED_EAGER_LOADS.labels(route, method, unused.relationship).inc()
        if log_findings:
            log.warning(
                "unused_eager_load",
                route=route,
                method=method,
                option=unused.option,
                relationship=unused.relationship,
                source=str(unused.site) if unused.site else None,
                statement=unused.statement,
                fix=unused.fix,
            )
    for found in record.connections:
        if log_findings:
            _log_new_connections(found, route, method)
    call_hooks(record, hooks)


class Throttle:
    """At most one event per key every ``interval`` seconds, counting the ones held back in between; at most
    ``max_keys`` keys remembered (the least recently logged is forgotten first), so memory stays bounded."""

    def __init__(self, interval: float = 60.0, max_keys: int = 256, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._last: OrderedDict[Hashable, list[float]] = OrderedDict()  # key → [logged at, held back since]
        self._lock = threading.Lock()  # WSGI apps report from many threads

    def admit(self, key: Hashable) -> int | None:
        """The number of events held back since the last one for ``key`` when this one may be logged, else None."""
        now = self._clock()
        with self._lock:
            entry = self._last.get(key)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                return None
            held = int(entry[1]) if entry is not None else 0
            self._last[key] = [now, 0]
            self._last.move_to_end(key)
            if len(self._last) > self.max_keys:
                self._last.popitem(last=False)
            return held

    def clear(self) -> None:
        with self._lock:
            self._last.clear()


NEW_CONNECTION_LOG = Throttle()
"""``new_connection_per_request`` is logged once per route, method and pool a minute: a NullPool app finds one on
every request, and one line with the count of those ``suppressed`` says as much as a line per request."""


def _log_new_connections(found: NewConnections, route: str, method: str) -> None:
    suppressed = NEW_CONNECTION_LOG.admit((route, method, found.pool))
    if suppressed is None:
        return
    log.warning(
        "new_connection_per_request",
        route=route,
        method=method,
        pool=found.pool,
        pool_class=found.pool_class,
        reason=str(found.reason),
        count=found.count,
        connect_ms=round(found.connect_ms, 3),
        request_ms=round(found.request_ms, 3),
        churn=found.churn,
        suppressed=suppressed,
        fix=found.fix,
    )


def call_hooks(record: Record, hooks: Sequence[RecordHook]) -> None:
    """Each hook in turn; one that raises is logged and the next still runs."""
    for hook in hooks:
        try:
            hook(record)
        except Exception as exc:  # an exporter's failure must never fail the request
            name = getattr(hook, "__qualname__", None) or type(hook).__qualname__
            log.error("on_record_hook_failed", hook=name, error=type(exc).__name__)
