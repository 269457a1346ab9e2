"""The Requests page's data: a bounded in-memory ring of recent request records, fed by the profiler.

The dashboard's one coupling to the profiler is its public :class:`~pgpulse.profiler.context.Record`: when a
request's record closes, the middleware's ``on_record`` hook hands it to :meth:`RequestRing.add` (the ring is
callable, so it is the hook itself: ``PgPulseMiddleware(app, on_record=ring)``). The ring keeps a small immutable
summary, never the record (which holds the ASGI scope), and at most ``size`` of them: memory is bounded whatever
the traffic. Statements are kept as sent (placeholders only); parameter values, even when the profiler logs
them, are not copied; nor is anything of the request itself but its method and route template (never the path,
the query string or the body).

The dashboard's own page views pass through the same middleware when it is mounted in the profiled app; it
marks their scope (:data:`DASHBOARD_SCOPE_KEY`) and the ring leaves them out: they are not the application's
requests, and would push them out of the ring each time someone looks at it. Nor does it keep a request that
matched no route and ran no query (a browser's ``/favicon.ico``, a scanner probing ten thousand URLs): nothing
to show, and it would push the application's requests out.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from pgpulse.profiler.context import Record
from pgpulse.profiler.routes import UNMATCHED
from pgpulse.sql import redact_sql
from pgpulse.sql.cache import BoundedTextCache, text_bytes
from pgpulse.sql.shape import MAX_ITEM_BYTES

MAX_QUERIES_KEPT = 200  # per request: a runaway loop of 10,000 queries keeps its first 200 (the count is exact)
DASHBOARD_SCOPE_KEY = "pgpulse.dashboard"  # set in the ASGI scope of the dashboard's own requests


# An application runs a few hundred statement shapes: each is redacted once and the string shared between the
# summaries that hold it. 2,048 entries and 8 MiB bound what distinct large texts can make the cache hold (the
# ring itself keeps every statement it shows; the cache must not add a second, unbounded copy of old ones).
REDACTED_MAX_ENTRIES = 2048
REDACTED_MAX_BYTES = 8 * 1024 * 1024
_REDACTED: BoundedTextCache[str] = BoundedTextCache(
    redact_sql,
    max_entries=REDACTED_MAX_ENTRIES,
    max_bytes=REDACTED_MAX_BYTES,
    max_item_bytes=MAX_ITEM_BYTES,
    weigh=text_bytes,
)
_redacted_hit = _REDACTED.lookup
_redacted_miss = _REDACTED.miss


def _redacted(statement: str) -> str:
    found = _redacted_hit(statement)
    return found if found is not None else _redacted_miss(statement)


class QuerySummary(NamedTuple):
    """One query of a request (a named tuple: a request may run hundreds, and this is built for each on every
    request, in the request's task; a frozen dataclass costs several times more to build)."""

    statement: str
    duration_ms: float
    rows: int
    relationship: str | None


@dataclass(frozen=True, slots=True)
class FindingSummary:
    headline: str  # NPlusOne.describe()'s first line: what repeated, how often, where
    statement: str  # redacted: a literal written into the SQL text is not shown either
    fix: str
    line: str | None  # the application's source line that ran it


@dataclass(frozen=True, slots=True)
class UnusedSummary:
    """An eager-load option whose relationship nothing read (:class:`~pgpulse.profiler.context.UnusedEagerLoad`)."""

    option: str  # "selectinload(User.posts)"
    relationship: str  # "User.posts"
    statement: str  # redacted
    fix: str
    line: str | None  # the application's line that ran the query (known from the shape's second run on)
    where: str | None  # file:line in function(), when known


@dataclass(frozen=True, slots=True)
class ConnectionSummary:
    """New connections a request opened on an engine that connects per request (``NullPool``) or whose pool churns
    (:class:`~pgpulse.profiler.context.NewConnections`: at most one per engine, so a request holds a few)."""

    kind: str  # "new_connection_per_request" or "connection_churn"
    headline: str  # NewConnections.describe()'s first line: how many, the time spent connecting, the pool
    count: int
    connect_ms: float
    pool: str  # the pool name given to instrument()
    pool_class: str  # "NullPool", "AsyncAdaptedQueuePool"
    reason: str  # "no_pool" or "churn"
    fix: str  # whole: the engine call to use instead, and PgBouncer's settings for the driver


@dataclass(frozen=True, slots=True)
class RequestSummary:
    id: int
    at: float  # time.time() when it was added
    method: str
    route: str
    duration_ms: float
    db_ms: float
    query_count: int
    queries: tuple[QuerySummary, ...]
    findings: tuple[FindingSummary, ...]
    unused: tuple[UnusedSummary, ...]
    connections: tuple[ConnectionSummary, ...] = ()

    @property
    def new_connections(self) -> int:
        """The connections opened by the request's new-connection findings (0 when it has none)."""
        return sum(c.count for c in self.connections)


class RequestRing:
    """The last ``size`` requests (thread-safe: sync and async apps may feed it from several threads)."""

    def __init__(self, size: int = 500) -> None:
        self._items: deque[RequestSummary] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[RequestSummary], None]] = []

    def subscribe(self, listener: Callable[[RequestSummary], None]) -> None:
        """Also hand each new summary to ``listener`` (the store's request history), in the caller's thread."""
        self._listeners.append(listener)

    @property
    def size(self) -> int:
        return self._items.maxlen or 0

    def add(self, record: Record) -> None:
        """Keep a summary of a closed record (called once per request, off the query path)."""
        if record.scope is not None and record.scope.get(DASHBOARD_SCOPE_KEY):
            return
        route = record.route_name()
        if route in (None, UNMATCHED) and not record.queries:
            return
        elapsed_ms = record.elapsed_ms
        queries = tuple(
            QuerySummary(_redacted(q.statement), q.duration_ms, q.rows, q.relationship)
            for q in record.queries[:MAX_QUERIES_KEPT]
        )
        findings = tuple(
            FindingSummary(
                f.describe().splitlines()[0],
                _redacted(f.statement),
                f.fix,
                f.site.line if f.site else None,
            )
            for f in record.findings
        )
        unused = tuple(
            UnusedSummary(
                u.option,
                u.relationship,
                _redacted(u.statement),
                u.fix,
                (u.site.line or None) if u.site else None,
                str(u.site) if u.site and u.site.filename else None,
            )
            for u in record.unused
        )
        connections = tuple(
            ConnectionSummary(
                c.kind,
                c.describe().splitlines()[0],
                c.count,
                c.connect_ms,
                c.pool,
                c.pool_class,
                str(c.reason),
                c.fix,
            )
            for c in record.connections
        )
        with self._lock:
            summary = RequestSummary(
                next(self._ids),
                time.time(),
                record.method or "?",
                route or UNMATCHED,
                elapsed_ms,
                record.db_ms,
                record.query_count,
                queries,
                findings,
                unused,
                connections,
            )
            self._items.append(summary)
        for listener in self._listeners:
            listener(summary)

    __call__ = add

    def items(self) -> list[RequestSummary]:
        with self._lock:
            return list(self._items)

    def get(self, request_id: int) -> RequestSummary | None:
        return next((r for r in self.items() if r.id == request_id), None)
