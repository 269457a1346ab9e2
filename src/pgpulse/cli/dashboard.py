"""``pgpulse dashboard``: serve the dashboard standalone with uvicorn, on loopback unless told otherwise."""

from __future__ import annotations

import typer

from pgpulse.cli.errors import fail


def dashboard(
    url: str = typer.Argument(None, help="Database to look at (default: PGPULSE_DATABASE_URL)."),
    store: str = typer.Option(None, "--store", help="History store URL (pgpulse history): sparklines, growth."),
    target: str = typer.Option(None, "--target", help="The store's target name (default: host:port/database)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; loopback unless told otherwise."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
) -> None:
    """Serve the read-only web dashboard: overview, queries, indexes, tables, connections."""
    import os

    database_url = url or os.environ.get("PGPULSE_DATABASE_URL")
    if not database_url:
        fail("give the database URL: pgpulse dashboard postgresql://user@host/db (or set PGPULSE_DATABASE_URL)")
    from pgpulse.extras import require_extra

    require_extra("dashboard", "pgpulse dashboard")  # MissingExtraError: one line through cli.errors
    import uvicorn

    from pgpulse.dashboard import app  # lazily: jinja2 is the [dashboard] extra

    # Standalone, the person who started it is the only user: no auth; a non-loopback --host is their call.
    # A DashboardError (a UserError) becomes one line through cli.errors.
    asgi = app(database_url, store, production=False, target=target)
    typer.echo(f"pgpulse dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(asgi, host=host, port=port, log_level="warning")
