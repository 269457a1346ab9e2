"""How the command line fails: one line on stderr (secrets masked), an exit code, never a traceback.

The library raises :class:`pgpulse.errors.PgPulseError` (and its subclasses) and never exits; this module is the
one place that turns an error into a line and an exit code. :class:`Commands` is the click group of the
``pgpulse`` app: every command runs inside :func:`one_line_errors`, so a command only catches what it wants to
word differently (e.g. a connection error prefixed with the redacted target).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from typer.core import TyperGroup

from pgpulse.errors import PgPulseError

EXIT_FINDINGS = 1  # the command worked and found something the user asked to fail on (CI)
EXIT_USAGE = 2  # the command could not do its job: bad input, unreachable database, missing extra


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` as one ``error:`` line (secrets masked, newlines folded) and exit with ``code``.

    Messages quote driver errors, and a driver error can quote the DSN it was given: every line goes through
    the redaction module here, so no command has to remember to."""
    from rich.console import Console
    from rich.markup import escape

    from pgpulse.sql.redact import redact_text  # pglast: only paid for on the error path

    line = " ".join(redact_text(message).split())
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    stderr.print(f"[bold red]error:[/] {escape(line)}", markup=True)  # "[/x]" in a message is text
    sys.exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn any :class:`PgPulseError` raised inside into :func:`fail`'s one line and exit code 2."""
    try:
        yield
    except PgPulseError as exc:
        fail(str(exc))


class Commands(TyperGroup):
    """The ``pgpulse`` group: each sub-command is invoked inside :func:`one_line_errors`."""

    def invoke(self, ctx: Any) -> Any:  # click's Context (typer >= 0.26 vendors its own click)
        with one_line_errors():
            return super().invoke(ctx)
