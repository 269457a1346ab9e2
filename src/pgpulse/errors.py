"""One way to fail in front of a user: a single line that says what to do, and exit code 2."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

EXIT_FINDINGS = 1
EXIT_USAGE = 2

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class PgPulseError(Exception):
    """Base of every error pgpulse raises on purpose. The library raises; only the CLI turns one into a line and
    an exit code."""


class UserError(PgPulseError):
    """An error the user can fix; ``str()`` is the one-line message shown to them."""


class MissingExtraError(UserError):
    """A command needs an optional part of pgpulse that is not installed; ``str()`` says what to install."""


class DemoDatabaseRefused(UserError):
    """``pgpulse demo``/``serve`` will not write to this database: it exists and the demo did not create it."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (driver errors run to several), or its class name when empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` as one ``error:`` line (secrets masked, newlines folded) and exit with ``code``.

    Messages quote driver errors, and a driver error can quote the DSN it was given: every line goes through
    the redaction module here, so no command has to remember to."""
    from pgpulse.sql.redact import redact_text  # pglast: only paid for on the error path

    line = " ".join(redact_text(message).split())
    _stderr.print(f"[bold red]error:[/] {escape(line)}", markup=True)  # "[/x]" in a message is text
    sys.exit(code)
