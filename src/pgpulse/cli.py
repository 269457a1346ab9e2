"""The ``pgpulse`` command: demo, serve, doctor, advise, logs, bench.

Every sub-command turns bad input into one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import typer

from pgpulse.advisor.command import advise
from pgpulse.bench.command import bench
from pgpulse.cli_demo import demo, serve
from pgpulse.doctor.command import doctor
from pgpulse.history.command import history_app
from pgpulse.logs.command import logs

app = typer.Typer(
    name="pgpulse",
    help="Find why a FastAPI + SQLAlchemy + PostgreSQL API is slow, fix it, prove it, keep it fixed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: flags show no "<bool>" type column (typer 0.29 shows one)
)

app.command()(demo)
app.command()(serve)
# Each capability registers its own command here (one line each):
# -- commands --
app.command()(bench)
app.command()(doctor)
app.command()(logs)
app.command()(advise)
app.add_typer(history_app, name="history")


@app.command()
def dashboard(
    url: str = typer.Argument(None, help="Database to look at (default: PGPULSE_DATABASE_URL)."),
    store: str = typer.Option(None, "--store", help="History store URL (pgpulse history): sparklines, growth."),
    target: str = typer.Option(None, "--target", help="The store's target name (default: host:port/database)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; loopback unless told otherwise."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
) -> None:
    """Serve the read-only web dashboard: overview, queries, indexes, tables, connections."""
    from pgpulse.dashboard.command import serve  # lazily: jinja2 is the [dashboard] extra

    serve(url, store, target, host, port)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"pgpulse {version('pgpulse')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Show the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Find why a FastAPI + SQLAlchemy + PostgreSQL API is slow, fix it, prove it, keep it fixed."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
