"""The ``pgpulse`` command: demo, serve, doctor, advise, logs, history, dashboard, bench.

One module per command; each imports its capability only when it runs, so ``pgpulse --help`` stays fast and a
core install can run the commands that need no extra. The library raises :mod:`pgpulse.errors`; the group
class (:class:`pgpulse.cli.errors.Commands`) turns any of them into one line on stderr and exit code 2, never
a traceback.
"""

from __future__ import annotations

import typer

from pgpulse.cli.advise import advise
from pgpulse.cli.bench import bench
from pgpulse.cli.dashboard import dashboard
from pgpulse.cli.demo import demo, serve
from pgpulse.cli.doctor import doctor
from pgpulse.cli.errors import Commands
from pgpulse.cli.history import history_app
from pgpulse.cli.logs import logs

app = typer.Typer(
    name="pgpulse",
    cls=Commands,
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
app.command()(dashboard)


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
