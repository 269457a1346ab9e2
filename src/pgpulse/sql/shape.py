"""Query identity shared by the profiler, the log reader and the advisor: pglast, the real PostgreSQL parser.

Two statements that differ only in constants (``id = 1`` vs ``id = $1`` vs ``IN (1, 2, 3)``) share one
fingerprint, exactly as pg_stat_statements would group them. Text that PostgreSQL itself cannot parse gets a
stable hash of its whitespace-folded text instead, so a broken statement still groups with its repeats.
"""

from __future__ import annotations

import hashlib
import re

from pglast import parser

from pgpulse.sql.cache import BoundedTextCache, text_bytes

_WS = re.compile(r"\s+")


# Bounds of the two memos below (pgpulse.sql.cache). An application runs a few hundred statement shapes of a few
# hundred bytes, so 8,192 entries hold every shape of even a large app with room for their literal variants; a
# text whose entry passes 16 KiB is a bulk statement (VALUES lists, inlined literals) that rarely repeats
# verbatim, so it is parsed each time rather than kept; 32 MiB (2,048 entries at the item limit) caps what an
# application sending only distinct large texts can make the profiler hold: 64 MiB for the two memos together.
MAX_ENTRIES = 8192
MAX_BYTES = 32 * 1024 * 1024
MAX_ITEM_BYTES = 16 * 1024


def fingerprint_uncached(sql: str) -> str:
    """:func:`fingerprint` without the memo: for a reader of an unbounded stream of texts (a server log) that
    keeps its own cache and should not push the profiler's shapes out of the shared one."""
    try:
        return str(parser.fingerprint(sql))
    except Exception:
        folded = _WS.sub(" ", sql).strip().lower()
        return "x" + hashlib.blake2b(folded.encode(), digest_size=8).hexdigest()[1:]


def normalize_uncached(sql: str) -> str:
    """:func:`normalize` without the memo (see :func:`fingerprint_uncached`)."""
    try:
        return str(parser.normalize(sql))
    except Exception:
        return _WS.sub(" ", sql).strip()


FINGERPRINTS: BoundedTextCache[str] = BoundedTextCache(
    fingerprint_uncached, max_entries=MAX_ENTRIES, max_bytes=MAX_BYTES, max_item_bytes=MAX_ITEM_BYTES, weigh=text_bytes
)
NORMALIZED: BoundedTextCache[str] = BoundedTextCache(
    normalize_uncached, max_entries=MAX_ENTRIES, max_bytes=MAX_BYTES, max_item_bytes=MAX_ITEM_BYTES, weigh=text_bytes
)
_fingerprint_hit = FINGERPRINTS.lookup
_fingerprint_miss = FINGERPRINTS.miss
_normalized_hit = NORMALIZED.lookup
_normalized_miss = NORMALIZED.miss


def fingerprint(sql: str) -> str:
    """A 16-hex-digit id of the statement's shape (libpg_query fingerprint); never raises. Memoized in
    :data:`FINGERPRINTS` (bounded in entries and bytes): the profiler calls it for every query."""
    found = _fingerprint_hit(sql)
    return found if found is not None else _fingerprint_miss(sql)


def normalize(sql: str) -> str:
    """The statement with every constant replaced by ``$n`` (safe to log: no parameter values). Memoized in
    :data:`NORMALIZED` (bounded in entries and bytes)."""
    found = _normalized_hit(sql)
    return found if found is not None else _normalized_miss(sql)


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
