"""Jinja2 filters: numbers a person reads (sizes, durations, shares), one definition for every page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pgpulse.sql import quote_ident
from pgpulse.units import pretty_bytes


def size(value: float | None) -> str:
    return pretty_bytes(value, unknown="–", grouping=True)


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    v = float(value)
    if v >= 60_000:
        return f"{v / 60_000:,.1f} min"
    if v >= 1_000:
        return f"{v / 1_000:,.2f} s"
    return f"{v:,.2f} ms"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * float(value):.1f} %"


def count(value: float | None) -> str:
    return "–" if value is None else f"{float(value):,.0f}"


def ago(value: datetime | timedelta | None) -> str:
    if value is None:
        return "never"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    seconds = value.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


FILTERS: dict[str, Callable[[Any], str]] = {
    "size": size,
    "ms": ms,
    "pct": pct,
    "count": count,
    "ago": ago,
    "qident": quote_ident,  # the fix a page prints must be SQL that runs on a name with a quote in it
}
