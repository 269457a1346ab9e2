"""What a doctor check is: a query plus a rule, returning findings that carry their evidence and their fix.

PgHero-style: each check lives in its own module under ``checks/`` with its SQL at the top and a
docstring saying what it finds, why it matters and what fix it proposes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol

import asyncpg

from pgpulse.sql import quote_ident, quote_qualified
from pgpulse.units import pretty_bytes  # re-exported: every check formats sizes with it

__all__ = [
    "Check",
    "Context",
    "Finding",
    "Options",
    "Severity",
    "SkipCheck",
    "pretty_bytes",
    "qualified",
    "quote_ident",
]


class Severity(IntEnum):
    info = 1
    warning = 2
    critical = 3

    def __str__(self) -> str:
        return self.name


@dataclass
class Finding:
    check: str
    severity: Severity
    object: str  # what it is about: "public.posts", "index public.ix_x", "setting work_mem", "server"
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str | None = None  # exact SQL (or config/code change) that fixes it
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": str(self.severity),
            "object": self.object,
            "title": self.title,
            "evidence": {k: _plain(v) for k, v in self.evidence.items()},
            "fix": self.fix,
            "note": self.note,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


SQLALCHEMY_MAX_OVERFLOW = 10  # what a pool grows to when the application does not say otherwise


@dataclass
class Options:
    """What the user told us: the application side (pools), thresholds, and the server's memory."""

    app_workers: int | None = None
    pool_size: int | None = None
    max_overflow: int | None = None  # None: SQLAlchemy's default, 10
    long_query_seconds: float = 60.0  # PgHero's long_running_query_sec
    idle_in_transaction_seconds: float = 60.0
    memory_bytes: int | None = None  # the server's RAM; None: measured when the server runs on this host


class SkipCheck(Exception):
    """Raised by a check that cannot judge this server (e.g. its RAM is unknown); the message says why."""


@dataclass
class Context:
    conn: asyncpg.Connection
    server_version: int  # e.g. 180006
    database: str
    extensions: set[str]
    preload_libraries: set[str]
    options: Options
    settings: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # as the server has them
    memory_bytes: int | None = None  # the server's RAM when known (--memory, or the server is on this host)
    memory_source: str = ""  # how memory_bytes was learned, for the evidence


class Check(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    async def run(self, ctx: Context) -> list[Finding]: ...


def qualified(schema: str, name: str) -> str:
    """A relation name as it is written in a fix: schema-qualified unless it lives in ``public``."""
    return quote_qualified(None if schema == "public" else schema, name)
