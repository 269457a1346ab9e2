"""cli.errors: the one place a library error becomes a line on stderr and an exit code.

Every command of the ``pgpulse`` group runs inside it, so a command needs no try/except of its own for a
``PgPulseError``; anything else is a bug and is not dressed up as a user error.
"""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from pgpulse.cli.errors import EXIT_USAGE, Commands
from pgpulse.errors import PgPulseError, UserError


def _app(error: BaseException) -> typer.Typer:
    app = typer.Typer(cls=Commands, add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def boom() -> None:
        raise error

    @app.command()
    def fine() -> None:
        typer.echo("ok")

    return app


def test_a_library_error_is_one_redacted_line_and_exit_2() -> None:
    error = UserError("cannot reach postgresql://u:secret@h:5432/db\nDETAIL:  role [bold]u[/] does not exist")
    result = CliRunner().invoke(_app(error), ["boom"])
    assert result.exit_code == EXIT_USAGE == 2
    assert result.output.splitlines() == [
        "error: cannot reach postgresql://u:***@h:5432/db DETAIL: role [bold]u[/] does not exist"
    ]


def test_the_base_class_is_mapped_too() -> None:
    result = CliRunner().invoke(_app(PgPulseError("the advisor proposed nothing")), ["boom"])
    assert (result.exit_code, result.output) == (2, "error: the advisor proposed nothing\n")


def test_a_bug_is_not_passed_off_as_a_user_error() -> None:
    result = CliRunner().invoke(_app(KeyError("oops")), ["boom"])
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)
    assert "error:" not in result.output


def test_a_command_that_succeeds_is_untouched() -> None:
    result = CliRunner().invoke(_app(UserError("unused")), ["fine"])
    assert (result.exit_code, result.output) == (0, "ok\n")
