"""JSON lines for an app that has not configured structlog: one explicit call, never an implicit one.

pgpulse only *emits* structlog events (:mod:`pgpulse.profiler.log_schema` lists them); how they are rendered
is the host app's business. Importing pgpulse, ``instrument()`` and the middleware never call
``structlog.configure``: an app that configured structlog keeps its processors and sink. Without any
configuration structlog prints coloured key=value text for a console, so an app that wants JSON lines and has
no logging setup of its own calls :func:`json_logging` once at start-up (or copies its few lines)::

    from pgpulse.profiler.json_logging import json_logging

    json_logging()   # stdout; a no-op returning False if structlog is configured already
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["json_logging"]


def json_logging(stream: TextIO | None = None, *, level: int = logging.INFO) -> bool:
    """Configure structlog to write one JSON object per line (``event``, ``level``, ``timestamp`` and the
    event's fields) to ``stream`` (stdout by default), dropping events below ``level``.

    Returns False and changes nothing when structlog has been configured already (by the app, or an earlier
    call): this never overrides a configuration someone chose.
    """
    if structlog.is_configured():
        return False
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # keys the app bound (request id…) join each line
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream if stream is not None else sys.stdout),
        cache_logger_on_first_use=True,
    )
    return True
