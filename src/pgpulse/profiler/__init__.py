"""Runtime profiler: per-request queries, N+1 detection with the fix, slow-query logs, metrics.

Two lines in an app::

    instrument(engine)
    app.add_middleware(PgPulseMiddleware, server_timing=True)
"""

from pgpulse.profiler.context import (
    NewConnections,
    NPlusOne,
    QueryEvent,
    Record,
    Site,
    UnusedEagerLoad,
    current,
    profile,
)
from pgpulse.profiler.events import ProfilerConfig, instrument, uninstrument
from pgpulse.profiler.metrics import METRIC_NAMES, metrics_app, metrics_wsgi_app
from pgpulse.profiler.middleware import PgPulseMiddleware
from pgpulse.profiler.reporting import RecordHook
from pgpulse.profiler.routes import UNMATCHED
from pgpulse.profiler.wsgi import PgPulseWSGIMiddleware

__all__ = [
    "METRIC_NAMES",
    "UNMATCHED",
    "NPlusOne",
    "NewConnections",
    "PgPulseMiddleware",
    "PgPulseWSGIMiddleware",
    "ProfilerConfig",
    "QueryEvent",
    "Record",
    "RecordHook",
    "Site",
    "UnusedEagerLoad",
    "current",
    "instrument",
    "metrics_app",
    "metrics_wsgi_app",
    "profile",
    "uninstrument",
]
