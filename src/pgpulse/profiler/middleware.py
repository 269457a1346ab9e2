"""Pure ASGI middleware (no BaseHTTPMiddleware: it breaks contextvars and streaming) opening one record per
request, adding ``Server-Timing`` and reporting findings when the response is done.

Log events carry the shape of each statement only (``pgpulse.sql.normalize``: no literal, no parameter);
parameters appear only with ``instrument(..., log_parameters=True)``, and never in these events.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgpulse.profiler.context import Record, close_record, open_record
from pgpulse.profiler.reporting import RecordHook, as_hooks, call_hooks, report, runs_at_response_end
from pgpulse.profiler.routes import public_path
from pgpulse.types import ASGIApp, Message, Receive, Scope, Send


class PgPulseMiddleware:
    """``threshold`` None (the default): each engine's own, as given to ``instrument()``.

    ``on_record``: a callable (or several) given each request's closed record, e.g. the dashboard's
    ``RequestRing`` or an exporter; see :mod:`pgpulse.profiler.reporting`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        threshold: int | None = None,
        server_timing: bool = False,
        log_findings: bool = True,
        on_record: RecordHook | Sequence[RecordHook] | None = None,
    ) -> None:
        self.app = app
        self.threshold = threshold
        self.server_timing = server_timing
        self.log_findings = log_findings
        hooks = as_hooks(on_record)
        self.hooks = tuple(hook for hook in hooks if not runs_at_response_end(hook))
        self.response_hooks = tuple(hook for hook in hooks if runs_at_response_end(hook))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = Record(threshold=self.threshold, method=scope.get("method"), scope=scope, path=public_path(scope))
        token = open_record(record)
        wrapped_send = send
        pending = self.response_hooks  # called before the last body message, or at close if none is sent
        if self.server_timing or pending:

            async def wrapped_send(message: Message) -> None:
                nonlocal pending
                kind = message["type"]
                if kind == "http.response.start" and self.server_timing:
                    timing = f'db;dur={record.db_ms:.1f};desc="{record.query_count} queries"'
                    message["headers"] = [*message.get("headers", ()), (b"server-timing", timing.encode("latin-1"))]
                elif pending and kind == "http.response.body" and not message.get("more_body", False):
                    hooks, pending = pending, ()
                    call_hooks(record, hooks)
                await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
        finally:
            close_record(record, token)
            report(record, log_findings=self.log_findings, hooks=(*pending, *self.hooks))
