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


@dataclass
class Options:
    """What the user told us about the application side (for the connections check)."""

    app_workers: int | None = None
    pool_size: int | None = None
    max_overflow: int | None = None


@dataclass
class Context:
    conn: asyncpg.Connection
    server_version: int  # e.g. 180006
    database: str
    extensions: set[str]
    preload_libraries: set[str]
    options: Options
    settings: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # as the server has them


class Check(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    async def run(self, ctx: Context) -> list[Finding]: ...


def quote_ident(name: str) -> str:
    if name.isidentifier() and name == name.lower():
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return name if schema == "public" else f"{quote_ident(schema)}.{quote_ident(name)}"


def pretty_bytes(size: int | float | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
