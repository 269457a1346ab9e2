"""How a history target is named: the store knows a database by its name, derived from the URL when not given.

A target's name is its identity in the store (many targets share one store). By default it is derived from
the URL's host, port and database — never the user or password — so the same database snapshotted from cron
and from a CronJob lands in one history. Targets files (``history collect --targets``) are read by
:mod:`pgpulse.db.targets`, the same format as ``doctor --targets``, with :func:`default_name` naming a line
that gives only a URL.
"""

from __future__ import annotations

from pgpulse.db.urls import async_url


def identity(url: str) -> tuple[str, int, str]:
    """``(host, port, database)``: what makes two URLs the same database, whoever connects."""
    parsed = async_url(url)
    return (parsed.host or "localhost", parsed.port or 5432, parsed.database or parsed.username or "")


def default_name(url: str) -> str:
    host, port, database = identity(url)
    return f"{host}:{port}/{database}"
