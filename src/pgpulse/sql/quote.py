"""The one identifier-quoting helper: pglast's, which knows PostgreSQL's reserved and type/function keywords.

A name is left bare only when PostgreSQL would read it back unchanged (lower case, digits, underscores, not a
keyword); everything else is double-quoted with embedded quotes doubled, so ``Order``, ``order``, ``user`` and
``a"b`` all round-trip. Every identifier pgpulse writes into SQL text goes through here.
"""

from __future__ import annotations

from pglast.stream import maybe_double_quote_name


def quote_ident(name: str) -> str:
    """``name`` as an SQL identifier. Refuses NUL (PostgreSQL names cannot hold it, so it is an attack)."""
    if not name or "\x00" in name:
        raise ValueError(f"not a valid identifier: {name!r}")
    return str(maybe_double_quote_name(name))


def quote_qualified(schema: str | None, name: str) -> str:
    """``schema.name`` with both parts quoted; the bare name when no schema is given."""
    return f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)
