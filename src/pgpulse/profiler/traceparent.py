"""The W3C ``traceparent`` of the current OpenTelemetry span, for the sqlcommenter comment.

With ``instrument(engine, sqlcommenter=True, sqlcommenter_traceparent=True)`` every statement of a traced
request carries ``traceparent='00-<trace id>-<span id>-<flags>'`` in its comment, so a statement seen in
``pg_stat_activity`` or in the server log (``log_min_duration_statement``, auto_explain) leads to its trace.

Imported by the listeners only when that option is on: an app that does not ask for it never imports
OpenTelemetry from the profiler's hot path. The value is W3C Trace Context whatever propagator the app
configured (B3 or Jaeger's would not match what trace backends index), in the exact format of the
``traceparent`` header OpenTelemetry's W3C propagator sends downstream.
"""

from __future__ import annotations

from pgpulse.extras import require_extra

require_extra("otel", "sqlcommenter_traceparent=True")

from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext, format_span_id, format_trace_id  # noqa: E402
from opentelemetry.trace import get_current_span as _current_span  # noqa: E402

_last: tuple[SpanContext, str | None] = (INVALID_SPAN_CONTEXT, None)


def current_traceparent() -> str | None:
    """``00-<32 hex>-<16 hex>-<2 hex>`` for the current span, or None outside a valid span (no span, or the
    no-op provider's): a request that is not traced gets no ``traceparent`` key, never a string of zeros.

    The same text as OpenTelemetry's W3C propagator writes (its ``format_trace_id`` / ``format_span_id``), built
    once per span: every statement of a request asks again, from the same span."""
    global _last
    context = _current_span().get_span_context()
    last_context, text = _last
    if context is last_context:
        return text
    text = (
        f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-{context.trace_flags:02x}"
        if context.is_valid
        else None
    )
    _last = (context, text)
    return text
