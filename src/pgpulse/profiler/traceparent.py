"""The W3C ``traceparent`` of the current OpenTelemetry span, for the sqlcommenter comment.

With ``instrument(engine, sqlcommenter=True, sqlcommenter_traceparent=True)`` every statement of a traced
request carries ``traceparent='00-<trace id>-<span id>-<flags>'`` in its comment, so a statement seen in
``pg_stat_activity`` or in the server log (``log_min_duration_statement``, auto_explain) leads to its trace.

Imported by the listeners only when that option is on: an app that does not ask for it never imports
OpenTelemetry from the profiler's hot path. The value comes from OpenTelemetry's own W3C Trace Context
propagator (not the globally configured one, which may be B3 or Jaeger's: PostgreSQL's side needs the W3C id
that trace backends index), so its format is exactly the header a downstream HTTP service would receive.
"""

from __future__ import annotations

from pgpulse.extras import require_extra

require_extra("otel", "sqlcommenter_traceparent=True")

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402

_PROPAGATOR = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """``00-<32 hex>-<16 hex>-<2 hex>`` for the current span, or None outside a valid (sampled or not) span.

    The propagator writes nothing for an invalid span context (no span, or the no-op provider's), so a request
    that is not traced gets no ``traceparent`` key, never a string of zeros."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")
