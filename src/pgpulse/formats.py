"""The output formats every report command offers: a table for people, JSON for machines, Markdown for PRs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum

from rich.console import Console


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def emit(
    format: Format,
    as_json: Callable[[], str],
    as_markdown: Callable[[], str],
    as_table: Callable[[Console], None],
) -> None:
    """Write one report to stdout in the chosen format (renderers are called lazily: only one runs)."""
    if format is Format.json:
        sys.stdout.write(as_json() + "\n")
    elif format is Format.markdown:
        sys.stdout.write(as_markdown() + "\n")
    else:
        as_table(Console(highlight=False))
