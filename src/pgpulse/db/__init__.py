"""Connections: the embedded server, the recommended engine and the health route."""

from pgpulse.db.engine import DatabaseURLError, async_url, libpq_url, make_engine, redact

__all__ = ["DatabaseURLError", "async_url", "libpq_url", "make_engine", "redact"]
