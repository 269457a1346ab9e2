"""Quantities as a person reads them in a report: one byte formatter for the doctor and the advisor.

Powers of 1024 with PostgreSQL's unit names (``pg_size_pretty`` writes ``kB``, ``MB``…), so a size in a
finding reads the same as the one ``psql`` shows.
"""

from __future__ import annotations


def pretty_bytes(size: int | float | None) -> str:
    """``1536`` → ``1.5 kB``; whole bytes below 1 kB; ``?`` when the size is unknown."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
