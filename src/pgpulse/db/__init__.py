"""Connections: URLs, inspecting sessions, databases, the recommended engine and the health route (the embedded
server and the demo database are in pgpulse.demo)."""

from typing import Any

from pgpulse.db.urls import DatabaseURLError, async_url, libpq_url, redact

__all__ = ["DatabaseURLError", "async_url", "libpq_url", "make_engine", "redact"]


def __getattr__(name: str) -> Any:
    # make_engine reads the settings object (pydantic-settings, the demo extra): imported only when asked for
    if name == "make_engine":
        from pgpulse.db.engine import make_engine

        return make_engine
    raise AttributeError(name)
