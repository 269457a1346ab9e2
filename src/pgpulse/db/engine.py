"""The engine we recommend: a bounded QueuePool that notices dead connections, with limits on every wait.

Connecting costs about as much as 80-100 simple queries, so a pool is the first fix for a slow API. Behind
PgBouncer in transaction mode prepared statements break (a statement prepared on one server connection is
not there on the next), so PgBouncer mode turns off both statement caches and gives every statement a unique
name. asyncpg's cache alone is not enough: SQLAlchemy's asyncpg adapter keeps its own, reuses a statement
prepared in an earlier transaction, and ~half the requests fail under concurrency (tests/faults).
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from pgpulse.db.urls import DatabaseURLError, async_url, libpq_url, redact
from pgpulse.settings import Settings

__all__ = ["DatabaseURLError", "async_url", "libpq_url", "make_engine", "redact"]


def make_engine(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    null_pool: bool = False,
    **overrides: Any,
) -> AsyncEngine:
    """An engine configured by ``settings`` only (their defaults when None: never the environment or a ``.env``)."""
    settings = settings if settings is not None else Settings.defaults()
    dsn = url or settings.database_url
    if not dsn:
        raise DatabaseURLError("no database URL: set DATABASE_URL or pass one")
    connect_args: dict[str, Any] = {
        "timeout": settings.connect_timeout,
        "server_settings": {"application_name": "pgpulse"},
        "command_timeout": None,
    }
    # PgBouncer closes a client that sends statement_timeout at start-up ("unsupported startup parameter"):
    # behind it, set the timeout on the role (ALTER ROLE ... SET statement_timeout) and rely on
    # route_statement_timeout_ms, whose SET LOCAL works in transaction mode.
    if settings.statement_timeout_ms and not settings.pgbouncer:
        connect_args["server_settings"]["statement_timeout"] = str(settings.statement_timeout_ms)
    if settings.pgbouncer:
        connect_args["statement_cache_size"] = 0  # asyncpg's cache
        connect_args["prepared_statement_cache_size"] = 0  # SQLAlchemy's, kept across transactions otherwise
        connect_args["prepared_statement_name_func"] = lambda: f"__pgpulse_{uuid4().hex}__"
    kwargs: dict[str, Any] = {"connect_args": connect_args, "pool_pre_ping": settings.pool_pre_ping}
    if null_pool or settings.pool == "null":
        kwargs["poolclass"] = NullPool
    else:
        kwargs.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
            pool_recycle=settings.pool_recycle,
        )
    kwargs.update(overrides)
    return create_async_engine(async_url(dsn), **kwargs)
