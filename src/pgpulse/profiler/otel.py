"""OpenTelemetry: each request's profile on the server span the app's OpenTelemetry instrumentation opened.

Pass the exporter as a record hook; the ASGI/FastAPI instrumentation must wrap the profiler's middleware (it
does when it wraps the whole app), so its server span is still current when the record closes::

    exporter = OpenTelemetryExporter(tracer_provider=provider, meter_provider=meter_provider)
    app.add_middleware(PgPulseMiddleware, on_record=exporter)
    app = OpenTelemetryMiddleware(app, tracer_provider=provider)  # or FastAPIInstrumentor.instrument_app(...)

What lands on the server span (only when it is recording: with no meter provider, an unsampled request costs
one context read):

=====================================  ======  =====================================================
attribute                              type    meaning
=====================================  ======  =====================================================
``pgpulse.db.query_count``             int     statements the request ran (failed ones included)
``pgpulse.db.duration_ms``             float   time spent in those statements, ms
``pgpulse.db.failed_count``            int     statements that raised (timeout, error)
``pgpulse.nplusone.count``             int     N+1 findings (one event each, below)
``pgpulse.unused_eager_load.count``    int     unused eager loads (one event each, below)
``pgpulse.db.new_connections``         int     database connections the request opened (0 on a warm pool)
=====================================  ======  =====================================================

Event ``pgpulse.n_plus_one``: ``pgpulse.relationship`` and ``pgpulse.loaded_via`` (lazy loads),
``pgpulse.count``, ``pgpulse.total_ms``, ``pgpulse.fix``, ``pgpulse.fingerprint``, ``db.statement`` (the
normalized shape: placeholders, never parameters or literals), ``code.file.path`` / ``code.line.number`` /
``code.function.name`` / ``pgpulse.code`` (the line that ran it), ``pgpulse.during_serialization``.
Event ``pgpulse.unused_eager_load``: ``pgpulse.option``, ``pgpulse.relationship``, ``pgpulse.fix``,
``db.statement``, and the ``code.*`` attributes once the query's line is known. Event
``pgpulse.new_connection_per_request`` (the engine connects per request, or its pool churns:
``pgpulse.profiler.connections``): ``pgpulse.count``, ``pgpulse.connect_ms``, ``pgpulse.pool``,
``pgpulse.pool_class``, ``pgpulse.reason``, ``pgpulse.churn`` (churn only), ``pgpulse.fix``. An attribute that
has no value for a finding is left out (OpenTelemetry attributes cannot be null).

Per-statement spans are ``opentelemetry-instrumentation-sqlalchemy``'s job. With ``statement_spans=True`` the
exporter emits them itself (``CLIENT`` spans under the server span, named after the operation as that
instrumentation names them, ``db.system=postgresql``, ``db.statement`` normalized, start and end from the
statement's own timing) — but never for a request whose engine that instrumentation traces already, so one
statement never shows up as two spans.

Metrics, only when a ``meter_provider`` is given (an SDK histogram costs 10-20 µs per recording, as much as
the rest of the exporter; Prometheus users have the same figures on ``/metrics`` already): histograms
``pgpulse.request.queries`` and ``pgpulse.request.db.duration`` (s), counters ``pgpulse.nplusone.findings``
and ``pgpulse.unused_eager_load.findings``, with ``http.route`` and ``http.request.method``.

Providers are injected: the global tracer provider is read only when none is given, once, at construction.
"""

from __future__ import annotations

from pgpulse.extras import require_extra

require_extra("otel", "the OpenTelemetry exporter (pgpulse.profiler.otel)")

import time  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from pgpulse.profiler.connections import detect_new_connections  # noqa: E402
from pgpulse.profiler.context import NewConnections, NPlusOne, QueryEvent, Record, Site, UnusedEagerLoad  # noqa: E402
from pgpulse.profiler.events import instrumented_engines  # noqa: E402
from pgpulse.profiler.nplusone import detect  # noqa: E402
from pgpulse.profiler.routes import UNMATCHED  # noqa: E402
from pgpulse.profiler.statements import shape  # noqa: E402
from pgpulse.profiler.unused import detect_unused  # noqa: E402
from pgpulse.sql.cache import BoundedTextCache, text_bytes  # noqa: E402
from pgpulse.sql.shape import MAX_ITEM_BYTES  # noqa: E402

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = [
    "NEW_CONNECTIONS_EVENT",
    "NPLUSONE_EVENT",
    "UNUSED_EAGER_LOAD_EVENT",
    "InMemoryTelemetry",
    "OpenTelemetryExporter",
    "in_memory_telemetry",
    "traced_by_sqlalchemy_instrumentation",
]

NPLUSONE_EVENT = "pgpulse.n_plus_one"
UNUSED_EAGER_LOAD_EVENT = "pgpulse.unused_eager_load"
NEW_CONNECTIONS_EVENT = "pgpulse.new_connection_per_request"
SCOPE = "pgpulse.profiler"  # the instrumentation scope of pgpulse's spans and metrics
SQLALCHEMY_INSTRUMENTATION = "opentelemetry.instrumentation.sqlalchemy"


def traced_by_sqlalchemy_instrumentation(engine: Engine) -> bool:
    """True when ``opentelemetry-instrumentation-sqlalchemy`` has put its cursor listeners on ``engine`` (by
    ``SQLAlchemyInstrumentor().instrument(engine=…)``, or globally before the engine was created)."""
    for name in ("before_cursor_execute", "after_cursor_execute"):
        for listener in getattr(engine.dispatch, name):
            if (getattr(listener, "__module__", None) or "").startswith(SQLALCHEMY_INSTRUMENTATION):
                return True
    return False


def _sqlalchemy_traced() -> bool:
    return any(traced_by_sqlalchemy_instrumentation(engine) for engine in instrumented_engines())


def _code(site: Site | None) -> dict[str, Any]:
    if site is None or not site.filename:
        return {}
    attributes: dict[str, Any] = {
        "code.file.path": site.filename,
        "code.line.number": site.lineno,
        "code.function.name": site.function,
    }
    line = site.line
    if line:
        attributes["pgpulse.code"] = line
    return attributes


def nplusone_attributes(finding: NPlusOne) -> dict[str, Any]:
    """The attributes of one ``pgpulse.n_plus_one`` event (the module docstring lists them)."""
    attributes: dict[str, Any] = {
        "pgpulse.count": finding.count,
        "pgpulse.total_ms": round(finding.total_ms, 3),
        "pgpulse.fix": finding.fix,
        "pgpulse.fingerprint": finding.fingerprint,
        "db.statement": finding.statement,
    }
    if finding.relationship:
        attributes["pgpulse.relationship"] = finding.relationship
    if finding.loaded_via:
        attributes["pgpulse.loaded_via"] = finding.loaded_via
    if finding.during_serialization:
        attributes["pgpulse.during_serialization"] = finding.during_serialization
    if finding.levels > 1:
        attributes["pgpulse.levels"] = finding.levels
    attributes.update(_code(finding.site))
    return attributes


def unused_attributes(unused: UnusedEagerLoad) -> dict[str, Any]:
    """The attributes of one ``pgpulse.unused_eager_load`` event."""
    attributes: dict[str, Any] = {
        "pgpulse.option": unused.option,
        "pgpulse.relationship": unused.relationship,
        "pgpulse.fix": unused.fix,
        "db.statement": unused.statement,
    }
    attributes.update(_code(unused.site))
    return attributes


def new_connections_attributes(found: NewConnections) -> dict[str, Any]:
    """The attributes of one ``pgpulse.new_connection_per_request`` event."""
    attributes: dict[str, Any] = {
        "pgpulse.count": found.count,
        "pgpulse.connect_ms": round(found.connect_ms, 3),
        "pgpulse.pool": found.pool,
        "pgpulse.pool_class": found.pool_class,
        "pgpulse.reason": str(found.reason),
        "pgpulse.fix": found.fix,
    }
    if found.churn is not None:
        attributes["pgpulse.churn"] = found.churn
    return attributes


SpanFacts = tuple[str, dict[str, Any]]  # a statement's span name and the attributes every span of it carries


def _span_facts(statement: str) -> SpanFacts:
    """The span name opentelemetry-instrumentation-sqlalchemy gives a statement, its first keyword (span names
    must stay few; the normalized statement goes in ``db.statement``), and the attributes every span of that
    statement carries."""
    text = shape(statement)
    operation = text.split(" ", 1)[0].upper() or "postgresql"
    return operation, {"db.system": "postgresql", "db.operation": operation, "db.statement": text}


def _facts_bytes(facts: SpanFacts) -> int:
    return text_bytes(facts[1]["db.statement"]) + _FACTS_OVERHEAD


# Computed once per statement text, in a table bounded like pgpulse.sql's memos: 2,048 statements, 8 MiB of
# keys and shaped texts (a text past the item limit is shaped each time its span is emitted).
_FACTS_OVERHEAD = 600  # the attributes dict and the tuple around the shaped text (sys.getsizeof, rounded up)
_MAX_STATEMENTS = 2048
_MAX_STATEMENT_BYTES = 8 * 1024 * 1024
_statements: BoundedTextCache[SpanFacts] = BoundedTextCache(
    _span_facts,
    max_entries=_MAX_STATEMENTS,
    max_bytes=_MAX_STATEMENT_BYTES,
    max_item_bytes=MAX_ITEM_BYTES,
    weigh=_facts_bytes,
)


class OpenTelemetryExporter:
    """A :data:`~pgpulse.profiler.reporting.RecordHook`: ``PgPulseMiddleware(app, on_record=exporter)``.

    ``tracer_provider`` is used only for per-statement spans; the attributes and events go on whatever span is
    current when the record closes (the server span of OpenTelemetry's ASGI/FastAPI instrumentation).
    ``statement_spans``: emit one span per statement, unless ``opentelemetry-instrumentation-sqlalchemy``
    traces the engine already (never both).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        statement_spans: bool = False,
    ) -> None:
        self.statement_spans = statement_spans
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(SCOPE)
        self._metrics = meter_provider is not None
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter(SCOPE)
        self._queries = meter.create_histogram(
            "pgpulse.request.queries", unit="{query}", description="Statements run per HTTP request"
        )
        self._db_seconds = meter.create_histogram(
            "pgpulse.request.db.duration", unit="s", description="Time spent in statements per HTTP request"
        )
        self._nplusone = meter.create_counter(
            "pgpulse.nplusone.findings", unit="{finding}", description="N+1 query patterns found in requests"
        )
        self._unused = meter.create_counter(
            "pgpulse.unused_eager_load.findings", unit="{finding}", description="Eager loads nothing read"
        )

    at_response_end = True
    """Run by the middleware just before the response's last body message, while the record is still open:
    OpenTelemetry's ASGI middleware ends the server span as that message passes (see ``reporting.RecordHook``).
    Queries a background task runs after the response are therefore not on the span (it has ended)."""

    def __call__(self, record: Record) -> None:
        span = trace.get_current_span()
        recording = span.is_recording()
        if not recording and not self._metrics:
            return  # an unsampled request, or no tracing: nothing to write anywhere
        if record.closed:
            findings, unused_loads, connections = record.findings, record.unused, record.connections
        else:  # the findings as of the response: detection is a pure function of the record so far
            findings = detect(record)
            unused_loads = detect_unused(record)
            connections = detect_new_connections(record)
        if self._metrics:
            self._record_metrics(record, findings, unused_loads)
        if not recording:
            return
        span.set_attributes(
            {
                "pgpulse.db.query_count": record.query_count,
                "pgpulse.db.duration_ms": round(record.db_ms, 3),
                "pgpulse.db.failed_count": record.failed_count,
                "pgpulse.nplusone.count": len(findings),
                "pgpulse.unused_eager_load.count": len(unused_loads),
                "pgpulse.db.new_connections": record.new_connections,
            }
        )
        for finding in findings:
            span.add_event(NPLUSONE_EVENT, nplusone_attributes(finding))
        for unused in unused_loads:
            span.add_event(UNUSED_EAGER_LOAD_EVENT, unused_attributes(unused))
        for found in connections:
            span.add_event(NEW_CONNECTIONS_EVENT, new_connections_attributes(found))
        if self.statement_spans and record.queries and not _sqlalchemy_traced():
            self._emit_statement_spans(span, record.queries)

    def _record_metrics(self, record: Record, findings: list[NPlusOne], unused_loads: list[UnusedEagerLoad]) -> None:
        labels = {"http.route": record.route_name() or UNMATCHED, "http.request.method": record.method or ""}
        self._queries.record(record.query_count, labels)
        self._db_seconds.record(record.db_ms / 1000.0, labels)
        for finding in findings:
            self._nplusone.add(1, {**labels, "pgpulse.relationship": finding.relationship or ""})
        for unused in unused_loads:
            self._unused.add(1, {**labels, "pgpulse.relationship": unused.relationship})

    def _emit_statement_spans(self, parent: trace.Span, queries: list[QueryEvent]) -> None:
        # Statements were timed with perf_counter (monotonic); spans want epoch nanoseconds. One offset per
        # record keeps each span's start and length exactly as measured.
        offset_ns = time.time_ns() - time.perf_counter_ns()
        context = trace.set_span_in_context(parent)
        start_span = self._tracer.start_span
        for query in queries:
            start_ns = int(query.started * 1e9) + offset_ns
            name, common = _statements(query.statement)
            attributes = common.copy()
            relationship = query.relationship
            if relationship:
                attributes["pgpulse.relationship"] = relationship
            if query.rows >= 0:
                attributes["db.response.returned_rows"] = query.rows
            span = start_span(
                name,
                context=context,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                start_time=start_ns,
            )
            if query.error is not None:
                span.set_status(Status(StatusCode.ERROR, query.error))
            span.end(end_time=start_ns + int(query.duration_ms * 1e6))


@dataclass(frozen=True)
class InMemoryTelemetry:
    """An OpenTelemetry SDK that keeps what it records in memory (benchmarks, a user's own tests)."""

    exporter: OpenTelemetryExporter
    tracer_provider: SdkTracerProvider
    spans: InMemorySpanExporter
    metric_reader: InMemoryMetricReader

    def server_span(self, name: str = "GET /", attributes: Mapping[str, Any] | None = None) -> Any:
        """A context manager opening a recording SERVER span as OpenTelemetry's ASGI middleware would."""
        tracer = self.tracer_provider.get_tracer("pgpulse.in_memory")
        return tracer.start_as_current_span(name, kind=SpanKind.SERVER, attributes=attributes)


def in_memory_telemetry(*, statement_spans: bool = False, with_metrics: bool = False) -> InMemoryTelemetry:
    """An exporter wired to a fresh SDK tracer (and with ``with_metrics``, meter) provider that keep what they record
    in memory (``SimpleSpanProcessor``: each span is exported as it ends, so its cost is part of the request's)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    exporter = OpenTelemetryExporter(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider if with_metrics else None,
        statement_spans=statement_spans,
    )
    return InMemoryTelemetry(exporter, tracer_provider, spans, reader)
