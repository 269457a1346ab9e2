"""The output formats every report command offers: a table for people, JSON for machines, Markdown for PRs."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
