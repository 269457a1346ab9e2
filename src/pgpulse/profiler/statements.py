"""What the profiler shows of a statement, in findings and log events: its shape, never its literals.

``pgpulse.sql.normalize`` replaces every constant by a placeholder, ``pgpulse.sql.redact_sql`` removes the
comments (a ``/* note */`` can carry anything), and long IN lists are folded to their length so an eager
loader's 500 placeholders read as one line."""

from __future__ import annotations

import re

from pgpulse.sql import normalize, redact_sql
from pgpulse.sql.cache import BoundedTextCache, text_bytes
from pgpulse.sql.shape import MAX_ITEM_BYTES

# A parenthesised list of four or more placeholders (an expanded IN list), with or without casts.
_PLACEHOLDER = r"\$\d+(?:::[A-Za-z_][\w ]*(?:\[\])?)?"
_LONG_LIST = re.compile(rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER}){{3,}}\s*\)")


# Shapes are built when a finding, a slow query or a failed one is reported, not per query: 1,024 entries cover
# an application's shapes; 8 MiB caps what distinct large texts can make it hold (the item limit is
# pgpulse.sql's: a text past it is a bulk statement, shaped each time it is reported).
SHAPES_MAX_ENTRIES = 1024
SHAPES_MAX_BYTES = 8 * 1024 * 1024


def shape_uncached(statement: str) -> str:
    """The statement with literals as ``$n``, no comments, whitespace folded and long IN lists folded."""
    text = " ".join(redact_sql(normalize(statement)).split())
    return _LONG_LIST.sub(lambda m: f"(… {m.group(0).count('$')} values …)", text)


SHAPES: BoundedTextCache[str] = BoundedTextCache(
    shape_uncached,
    max_entries=SHAPES_MAX_ENTRIES,
    max_bytes=SHAPES_MAX_BYTES,
    max_item_bytes=MAX_ITEM_BYTES,
    weigh=text_bytes,
)
_shape_hit = SHAPES.lookup
_shape_miss = SHAPES.miss


def shape(statement: str) -> str:
    """:func:`shape_uncached`, memoized in :data:`SHAPES` (bounded in entries and bytes)."""
    found = _shape_hit(statement)
    return found if found is not None else _shape_miss(statement)
