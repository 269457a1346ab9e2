"""Database URLs as users paste them: parsed, checked, given the right driver, and printed without secrets.

Core (no demo dependencies): every command that takes a URL uses these, and ``pgpulse.db.engine`` (the demo's
recommended engine, which reads the settings object) re-exports them.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from pgpulse.errors import UserError
from pgpulse.sql.redact import redact_url


class DatabaseURLError(UserError, ValueError):
    """The DSN cannot be used; the message says how to write one that can."""


def async_url(url: str) -> URL:
    """Accept the DSN forms users paste (``postgres://``, ``postgresql://``) and pick the asyncpg driver."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy raises ArgumentError with a long message, or the ValueError of int(port)
        # ``from None``: the cause quotes the URL's parts ("invalid literal for int() with base 10: 'secret'" for
        # postgresql://user:secret), and a traceback (a server's log, an app that lets it propagate) prints it
        raise DatabaseURLError(
            f"cannot parse database URL {redact(url)!r}: expected postgresql://user:password@host:port/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("postgres", "postgresql"):
        raise DatabaseURLError(f"{backend!r} is not PostgreSQL: pgpulse needs a postgresql:// URL")
    if parsed.port is not None and not 0 < parsed.port < 65536:  # the driver would raise OverflowError
        raise DatabaseURLError(f"port {parsed.port} in {redact(url)} is out of range: use 1-65535 (default 5432)")
    return parsed.set(drivername="postgresql+asyncpg")


def libpq_url(url: str) -> str:
    """The same DSN without a SQLAlchemy driver suffix, for asyncpg.connect and psql."""
    return async_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def redact(url: str) -> str:
    """A DSN safe to print: the password (in the user-info part or the query string) replaced by ``***``."""
    return redact_url(url)
