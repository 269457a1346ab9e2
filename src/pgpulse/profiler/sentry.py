"""Sentry exporter: each request's N+1 findings as Sentry performance data, next to Sentry's own N+1 issue.

Sentry finds N+1 queries by itself: its SQLAlchemy integration (enabled by default when SQLAlchemy is
installed) sends one ``db`` span per statement, and Sentry's N+1 detector groups a run of ``db`` spans with the
same description into an "N+1 Query" issue. What Sentry cannot know is what pgpulse's listeners see inside the
ORM: which relationship was lazy-loaded, from which line of the application, and the ``selectinload`` chain
that fixes it. This hook adds exactly that, on the request's own transaction::

    sentry_sdk.init(dsn=..., traces_sample_rate=0.1)
    app.add_middleware(PgPulseMiddleware, on_record=SentryExporter())

Per request (the transaction Sentry's ASGI integration opened around the app, still current when the hook runs):

* transaction data ``pgpulse.query_count``, ``pgpulse.db_ms``, ``pgpulse.n_plus_one_count``,
  ``pgpulse.unused_eager_load_count``, ``pgpulse.new_connections`` (database connections the request opened),
  and the tag ``pgpulse.n_plus_one`` (the relationships, searchable in Discover) when a finding exists;
* per N+1 a child span, op ``pgpulse.n_plus_one``, named after the finding (``N+1: lazy load of Post.comments
  ran 50 times``) with its data: relationship, loaded_via, count, duration, normalized statement, fingerprint,
  fix, and the line as Sentry's own ``code.filepath`` / ``code.lineno`` / ``code.function`` keys (the keys its
  SQLAlchemy integration uses for a query's source). A child span rather than more transaction data: one
  request can have several findings, and transaction data is one flat key-value list, while each span is its
  own top-level row in the trace waterfall with its own attributes panel, beside the repeated ``db`` spans. It
  is a zero-length mark at the moment the request's record closed, after the last query (its cost is in
  ``pgpulse.duration_ms``): Sentry's N+1 detector walks a transaction's spans in order and a non-``db`` span
  in the middle of the repeated ones ends the run it is counting (``NPlusOneDBSpanDetector.visit_span``), so a
  span drawn over the repeated queries would hide Sentry's own issue. Its op does not start with ``db``, so
  no detector counts it as a query;
* per finding (N+1, unused eager load, a new connection per request or a churning pool) a breadcrumb, category
  ``pgpulse``, level warning: Sentry attaches breadcrumbs to the *events* captured afterwards in the request's
  scope (an exception in a background task that outlives the response, the opt-in event below), never to
  transactions.

``events=True`` also captures one warning event per N+1 fingerprint *new to this process*, with Sentry's
fingerprint set to pgpulse's (so Sentry groups every occurrence of one shape into one issue), bounded twice:
the fingerprints already sent are an LRU of ``max_fingerprints`` (memory stays bounded however many shapes an
app has), and a token bucket lets at most ``max_events_per_minute`` through (a deploy that introduces many
N+1 at once cannot flood the project's quota). A fingerprint the bucket turned away is not remembered, so it is
sent the next time it happens with a token to spare.

Only what pgpulse already puts in its log events leaves the process: normalized statements (placeholders, no
literal), never a query parameter, even with ``instrument(log_parameters=True)``. With Sentry not initialised
(no active client) the hook returns after one lookup.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from pgpulse.extras import require_extra

require_extra("sentry", "pgpulse.profiler.sentry")

import sentry_sdk  # noqa: E402  (after the one-line check for the extra)

from pgpulse.profiler.context import NewConnections, NPlusOne, Record, UnusedEagerLoad  # noqa: E402

if TYPE_CHECKING:
    from sentry_sdk._types import Event  # the SDK's TypedDict for an event (its before_send hooks use it too)

__all__ = ["SPAN_OP", "SentryExporter"]

SPAN_OP = "pgpulse.n_plus_one"
_TAG_LIMIT = 200  # Sentry truncates a tag value at 200 characters; cut at a relationship boundary instead


class SentryExporter:
    """An ``on_record`` hook that annotates the current Sentry transaction with each request's findings.

    ``events``: also capture one warning event per new N+1 fingerprint (off by default: the transaction data
    and Sentry's own N+1 issue are usually enough). ``clock`` is the bucket's time source (seconds).
    """

    def __init__(
        self,
        *,
        events: bool = False,
        max_events_per_minute: int = 10,
        max_fingerprints: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_events_per_minute < 1 or max_fingerprints < 1:
            raise ValueError("max_events_per_minute and max_fingerprints must be at least 1")
        self.events = events
        self.max_events_per_minute = max_events_per_minute
        self.max_fingerprints = max_fingerprints
        self._clock = clock
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tokens = float(max_events_per_minute)
        self._refilled = clock()
        self._lock = threading.Lock()  # WSGI apps call hooks from many threads

    def __call__(self, record: Record) -> None:
        if not sentry_sdk.get_client().is_active():
            return
        # Each finding described once: its span, breadcrumb and event share the text and the data.
        findings = [_Described(f, f.describe(), _data(f)) for f in record.findings]
        span = sentry_sdk.get_current_span()
        if span is not None:
            _annotate(span, record, findings)
        for found in findings:
            sentry_sdk.add_breadcrumb(
                category="pgpulse", type="default", level="warning", message=found.text, data=found.data
            )
        for unused in record.unused:
            sentry_sdk.add_breadcrumb(
                category="pgpulse", type="default", level="warning", message=unused.describe(), data=_unused(unused)
            )
        for opened in record.connections:
            sentry_sdk.add_breadcrumb(
                category="pgpulse",
                type="default",
                level="warning",
                message=opened.describe(),
                data=_connections(opened),
            )
        if self.events:
            for found in findings:
                if self._admit(found.finding.fingerprint):
                    sentry_sdk.capture_event(_event(found))

    def _admit(self, fingerprint: str) -> bool:
        """True (and the fingerprint remembered) for a fingerprint not sent yet, while the bucket has a token."""
        with self._lock:
            if fingerprint in self._seen:
                self._seen.move_to_end(fingerprint)
                return False
            now = self._clock()
            rate = self.max_events_per_minute / 60.0
            self._tokens = min(float(self.max_events_per_minute), self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            self._seen[fingerprint] = None
            if len(self._seen) > self.max_fingerprints:
                self._seen.popitem(last=False)
            return True


class _Described(NamedTuple):
    finding: NPlusOne
    text: str  # NPlusOne.describe(): the first line names the span, the whole is the breadcrumb and the event
    data: dict[str, Any]


def _annotate(span: Any, record: Record, findings: list[_Described]) -> None:
    transaction = getattr(span, "containing_transaction", None) or span
    transaction.set_data("pgpulse.query_count", record.query_count)
    transaction.set_data("pgpulse.db_ms", round(record.db_ms, 3))
    transaction.set_data("pgpulse.n_plus_one_count", len(record.findings))
    transaction.set_data("pgpulse.unused_eager_load_count", len(record.unused))
    transaction.set_data("pgpulse.new_connections", record.new_connections)
    if not record.findings:
        return
    names = sorted({f.relationship or "repeated_query" for f in record.findings})
    tag = ""
    for name in names:
        if len(tag) + len(name) + 1 > _TAG_LIMIT:
            break
        tag = f"{tag},{name}" if tag else name
    transaction.set_tag("pgpulse.n_plus_one", tag)
    if not getattr(transaction, "sampled", False):
        return  # an unsampled transaction records no span: do not build any
    ended = record.ended if record.ended is not None else time.perf_counter()
    end = time.time() - (time.perf_counter() - ended)  # the record's end on the wall clock Sentry's spans use
    for found in findings:
        # On the transaction itself, not the current span (a middleware span where Sentry makes those): a
        # top-level row of the waterfall whatever the SDK's middleware_spans setting.
        child = transaction.start_child(
            op=SPAN_OP,
            name=found.text.split("\n", 1)[0],
            origin="auto.db.pgpulse",
            start_timestamp=end,
        )
        for key, value in found.data.items():
            child.set_data(key, value)
        child.finish(end_timestamp=end)


def _data(finding: NPlusOne) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pgpulse.kind": finding.kind,
        "pgpulse.relationship": finding.relationship,
        "pgpulse.loaded_via": finding.loaded_via,
        "pgpulse.count": finding.count,
        "pgpulse.duration_ms": round(finding.total_ms, 3),
        "pgpulse.statement": finding.statement,
        "pgpulse.fingerprint": finding.fingerprint,
        "pgpulse.fix": finding.fix,
    }
    site = finding.site
    if site is not None and site.filename:
        data["code.filepath"] = site.filename
        data["code.lineno"] = site.lineno
        data["code.function"] = site.function
        data["pgpulse.code"] = site.line
    if finding.during_serialization:
        data["pgpulse.during_serialization"] = finding.during_serialization
    return data


def _unused(unused: UnusedEagerLoad) -> dict[str, Any]:
    return {
        "pgpulse.kind": unused.kind,
        "pgpulse.option": unused.option,
        "pgpulse.relationship": unused.relationship,
        "pgpulse.source": str(unused.site) if unused.site else None,
        "pgpulse.statement": unused.statement,
        "pgpulse.fix": unused.fix,
    }


def _connections(found: NewConnections) -> dict[str, Any]:
    return {
        "pgpulse.kind": found.kind,
        "pgpulse.count": found.count,
        "pgpulse.connect_ms": round(found.connect_ms, 3),
        "pgpulse.pool": found.pool,
        "pgpulse.pool_class": found.pool_class,
        "pgpulse.churn": found.churn,
        "pgpulse.fix": found.fix,
    }


def _event(found: _Described) -> Event:
    """A warning event for a new N+1; Sentry adds the transaction name, trace and breadcrumbs from the scope."""
    finding = found.finding
    return {
        "level": "warning",
        "logger": "pgpulse.profiler",
        "message": found.text,
        "fingerprint": ["pgpulse.n_plus_one", finding.fingerprint],
        "tags": {"pgpulse.relationship": finding.relationship or "repeated_query"},
        "contexts": {"pgpulse": dict(found.data)},
    }
