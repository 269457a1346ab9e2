"""One way to fail in front of a user: a single line that says what to do, and exit code 2."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

EXIT_FINDINGS = 1
EXIT_USAGE = 2

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class UserError(Exception):
    """An error the user can fix; ``str()`` is the one-line message shown to them."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    _stderr.print(f"[bold red]error:[/] {message}")
    sys.exit(code)
