"""Query identity shared by the profiler, the log reader and the advisor: pglast, the real PostgreSQL parser.

Two statements that differ only in constants (``id = 1`` vs ``id = $1`` vs ``IN (1, 2, 3)``) share one
fingerprint, exactly as pg_stat_statements would group them. Text that PostgreSQL itself cannot parse gets a
stable hash of its whitespace-folded text instead, so a broken statement still groups with its repeats.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from pglast import parser

_WS = re.compile(r"\s+")


@lru_cache(maxsize=8192)
def fingerprint(sql: str) -> str:
    """A 16-hex-digit id of the statement's shape (libpg_query fingerprint); never raises."""
    try:
        return str(parser.fingerprint(sql))
    except Exception:
        folded = _WS.sub(" ", sql).strip().lower()
        return "x" + hashlib.blake2b(folded.encode(), digest_size=8).hexdigest()[1:]


@lru_cache(maxsize=8192)
def normalize(sql: str) -> str:
    """The statement with every constant replaced by ``$n`` (safe to log: no parameter values)."""
    try:
        return str(parser.normalize(sql))
    except Exception:
        return _WS.sub(" ", sql).strip()


def parses(sql: str) -> bool:
    try:
        parser.parse_sql(sql)
    except Exception:
        return False
    return True


def split_statements(text: str) -> list[str]:
    """Statements of a SQL script, cut at top-level semicolons found by PostgreSQL's own scanner (so ``';'`` in
    a string or a ``$$`` body is not a boundary). Unlike ``pglast.split`` it keeps statements that do not parse,
    so a caller can report them instead of silently losing them."""
    try:
        tokens = parser.scan(text)  # offsets are in characters
    except Exception:  # an unterminated string or comment: fall back to plain semicolons
        return [part.strip() for part in text.split(";") if part.strip()]
    pieces: list[str] = []
    last = 0
    for token in tokens:
        if token.name == "ASCII_59":
            pieces.append(text[last : token.start])
            last = token.start + 1
    pieces.append(text[last:])
    return [p.strip() for p in pieces if p.strip()]
