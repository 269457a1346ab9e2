"""Quantities as a person reads them in a report: one byte formatter for the doctor and the advisor.

Powers of 1024 with PostgreSQL's unit names (``pg_size_pretty`` writes ``kB``, ``MB``…), so a size in a
finding reads the same as the one ``psql`` shows.
"""

from __future__ import annotations


def pretty_bytes(size: int | float | None, *, unknown: str = "?", grouping: bool = False) -> str:
    """``1536`` → ``1.5 kB``; whole bytes below 1 kB; ``unknown`` when the size is unknown. ``grouping`` puts
    thousands separators in (the dashboard's tables: ``1,023 B``)."""
    if size is None:
        return unknown
    value = float(size)
    sep = "," if grouping else ""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:{sep}.0f} {unit}" if unit == "B" else f"{value:{sep}.1f} {unit}"
        value /= 1024
    return f"{value:{sep}.1f} TB"
