"""What the profiler shows of a statement, in findings and log events: its shape, never its literals.

``pgpulse.sql.normalize`` replaces every constant by a placeholder, ``pgpulse.sql.redact_sql`` removes the
comments (a ``/* note */`` can carry anything), and long IN lists are folded to their length so an eager
loader's 500 placeholders read as one line."""

from __future__ import annotations

import re
from functools import lru_cache

from pgpulse.sql import normalize, redact_sql

# A parenthesised list of four or more placeholders (an expanded IN list), with or without casts.
_PLACEHOLDER = r"\$\d+(?:::[A-Za-z_][\w ]*(?:\[\])?)?"
_LONG_LIST = re.compile(rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER}){{3,}}\s*\)")


@lru_cache(maxsize=1024)
def shape(statement: str) -> str:
    """The statement with literals as ``$n``, no comments, whitespace folded and long IN lists folded."""
    text = " ".join(redact_sql(normalize(statement)).split())
    return _LONG_LIST.sub(lambda m: f"(… {m.group(0).count('$')} values …)", text)
