"""Settings read from the environment (prefix ``PGPULSE_``), so one build runs in dev, CI and production.

``DATABASE_URL`` is also accepted without the prefix because that is what every hosting platform sets.

Only the command line and the demo (CitizenApp, the benchmarks' app server) read the environment and the
``.env`` of the current directory through :func:`get_settings`; the components (profiler, doctor, advisor, logs,
history, dashboard, ``make_engine``) take their configuration as arguments, so an app that embeds them is not
reconfigured by a stray ``.env`` in whatever directory it was started from.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PGPULSE_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PGPULSE_DATABASE_URL", "DATABASE_URL")
    )

    # Pool: sized for one uvicorn worker; workers x (pool_size + max_overflow) must fit max_connections.
    # "null" opens a connection per checkout: only for comparison (bench) or behind an external pooler.
    pool: Literal["queue", "null"] = "queue"
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=5, ge=0)
    pool_timeout: float = Field(default=5.0, gt=0)
    pool_recycle: int = Field(default=1800, ge=-1)
    pool_pre_ping: bool = True
    pgbouncer: bool = False
    connect_timeout: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    # Per read request (GET/HEAD), inside its transaction: one slow endpoint cannot hold a pooled connection
    # for the global statement_timeout; it answers 504 instead. 0 = off (it costs a SET LOCAL per request).
    route_statement_timeout_ms: int = Field(default=0, ge=0)

    # Profiler
    profiler_enabled: bool = True
    nplusone_threshold: int = Field(default=5, ge=2)
    slow_query_ms: float = Field(default=200.0, ge=0)
    server_timing: bool = False
    log_parameters: bool = False
    sqlcommenter: bool = False
    metrics_route: bool = False

    @classmethod
    def defaults(cls) -> Settings:
        """The documented defaults, reading neither the environment nor a ``.env`` file."""
        return cls.model_construct()


@lru_cache
def get_settings() -> Settings:
    """The demo's settings: the environment and the current directory's ``.env``, read once."""
    return Settings()
