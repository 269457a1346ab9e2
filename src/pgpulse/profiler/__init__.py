"""Runtime profiler: per-request queries, N+1 detection with the fix, slow-query logs, metrics.

Two lines in an app::

    instrument(engine)
    app.add_middleware(PgPulseMiddleware, server_timing=True)
"""

from pgpulse.profiler.context import NPlusOne, QueryEvent, Record, Site, current, profile
from pgpulse.profiler.events import ProfilerConfig, instrument
from pgpulse.profiler.metrics import METRIC_NAMES, metrics_app
from pgpulse.profiler.middleware import PgPulseMiddleware

__all__ = [
    "METRIC_NAMES",
    "NPlusOne",
    "PgPulseMiddleware",
    "ProfilerConfig",
    "QueryEvent",
    "Record",
    "Site",
    "current",
    "instrument",
    "metrics_app",
    "profile",
]
