"""``pgpulse dashboard``: serve the dashboard standalone with uvicorn, on loopback unless told otherwise."""

from __future__ import annotations

import typer

from pgpulse.errors import UserError, fail

MISSING_EXTRA = "pgpulse dashboard needs the dashboard extra: pip install 'pgpulse[dashboard]'"


def serve(url: str | None, store: str | None, target: str | None, host: str, port: int) -> None:
    """Serve the read-only web dashboard (overview, queries, indexes, tables, connections)."""
    import os

    database_url = url or os.environ.get("PGPULSE_DATABASE_URL")
    if not database_url:
        fail("give the database URL: pgpulse dashboard postgresql://user@host/db (or set PGPULSE_DATABASE_URL)")
    try:
        import uvicorn
    except ImportError:
        fail(MISSING_EXTRA)  # fail() escapes markup itself
    try:
        from pgpulse.dashboard import app

        # Standalone, the person who started it is the only user: no auth; a non-loopback --host is their call.
        asgi = app(database_url, store, production=False, target=target)
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"pgpulse dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(asgi, host=host, port=port, log_level="warning")
