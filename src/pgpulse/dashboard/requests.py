"""The Requests page's data: a bounded in-memory ring of recent request records, fed by the profiler.

The dashboard's one coupling to the profiler is its public :class:`~pgpulse.profiler.context.Record`: when a
request's record closes, the profiler's callback hands it to :meth:`RequestRing.add` (the ring is callable, so it
can be passed as the callback itself). The ring keeps a small immutable summary, never the record (which holds
the ASGI scope), and at most ``size`` of them: memory is bounded whatever the traffic. Statements are kept as
sent (placeholders only); parameter values, even when the profiler logs them, are not copied.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

from pgpulse.profiler.context import Record
from pgpulse.sql import redact_sql

MAX_QUERIES_KEPT = 200  # per request: a runaway loop of 10,000 queries keeps its first 200 (the count is exact)


@dataclass(frozen=True, slots=True)
class QuerySummary:
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


class RequestRing:
    """The last ``size`` requests (thread-safe: sync and async apps may feed it from several threads)."""

    def __init__(self, size: int = 500) -> None:
        self._items: deque[RequestSummary] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        """Keep a summary of a closed record (called once per request, off the query path)."""
        elapsed_ms = record.elapsed_ms
        queries = tuple(
            QuerySummary(redact_sql(q.statement), q.duration_ms, q.rows, q.relationship)
            for q in record.queries[:MAX_QUERIES_KEPT]
        )
        findings = tuple(
            FindingSummary(
                f.describe().splitlines()[0],
                redact_sql(f.statement),
                f.fix,
                f.site.line if f.site else None,
            )
            for f in record.findings
        )
        with self._lock:
            self._items.append(
                RequestSummary(
                    next(self._ids),
                    time.time(),
                    record.method or "?",
                    record.route_name() or "<unmatched>",
                    elapsed_ms,
                    record.db_ms,
                    record.query_count,
                    queries,
                    findings,
                )
            )

    __call__ = add

    def items(self) -> list[RequestSummary]:
        with self._lock:
            return list(self._items)

    def get(self, request_id: int) -> RequestSummary | None:
        return next((r for r in self.items() if r.id == request_id), None)
