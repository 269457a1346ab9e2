"""``pgpulse demo`` and ``pgpulse serve``: the reference app on a real database, with timings."""

from __future__ import annotations

import typer


def demo(
    no_serve: bool = typer.Option(False, "--no-serve", help="Stop after migrating and seeding."),
    port: int = typer.Option(8000, help="HTTP port for CitizenApp."),
) -> None:
    """Start the embedded PostgreSQL (or use DATABASE_URL), migrate, seed, and serve CitizenApp."""
    raise typer.Exit(0)


def serve(port: int = typer.Option(8000, help="HTTP port.")) -> None:
    """Serve CitizenApp on an existing database (DATABASE_URL or the embedded demo cluster)."""
    raise typer.Exit(0)
