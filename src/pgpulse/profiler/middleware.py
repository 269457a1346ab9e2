"""Pure ASGI middleware (no BaseHTTPMiddleware: it breaks contextvars and streaming) opening one record per
request, adding ``Server-Timing`` and reporting findings when the response is done.

Log events carry the shape of each statement only (``pgpulse.sql.normalize``: no literal, no parameter);
parameters appear only with ``instrument(..., log_parameters=True)``, and never in these events.
"""

from __future__ import annotations

from typing import Any

import structlog

from pgpulse.profiler import metrics
from pgpulse.profiler.context import Record, close_record, open_record
from pgpulse.profiler.routes import UNMATCHED, public_path
from pgpulse.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("pgpulse.profiler")


class PgPulseMiddleware:
    """``threshold`` None (the default): each engine's own, as given to ``instrument()``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        threshold: int | None = None,
        server_timing: bool = False,
        log_findings: bool = True,
    ) -> None:
        self.app = app
        self.threshold = threshold
        self.server_timing = server_timing
        self.log_findings = log_findings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = Record(threshold=self.threshold, method=scope.get("method"), scope=scope, path=public_path(scope))
        token = open_record(record)
        send_with_timing = send
        if self.server_timing:

            async def send_with_timing(message: Message) -> None:
                if message["type"] == "http.response.start":
                    timing = f'db;dur={record.db_ms:.1f};desc="{record.query_count} queries"'
                    message["headers"] = [*message.get("headers", ()), (b"server-timing", timing.encode("latin-1"))]
                await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            close_record(record, token)
            self._report(record)

    def _report(self, record: Record) -> None:
        route = record.route_name() or UNMATCHED
        method = record.method or ""
        metrics.QUERIES_PER_REQUEST.labels(route, method).observe(record.query_count)
        for query in record.failed:
            metrics.FAILED_QUERIES.labels(route, method, query.error or "").inc()
        for finding in record.findings:
            metrics.NPLUSONE_FINDINGS.labels(route, method, finding.relationship or "").inc()
            if self.log_findings:
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
            if self.log_findings:
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
