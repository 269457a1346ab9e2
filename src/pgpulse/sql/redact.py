"""Redaction: one module serves every output format and log event.

Secrets hide in three places pgpulse prints: database URLs (the password in the user-info part, or in the query
string as ``?password=`` / ``sslpassword=``; libpq keyword strings ``password=…``), SQL text (literals: query
parameters in a WHERE clause, ``CREATE SERVER … OPTIONS (password '…')``, ``COPY … PROGRAM '…'``,
``ALTER ROLE … PASSWORD '…'``, and comments), and free text that quotes either of them (a driver's error
message, a log line). Redaction errs on the side of hiding: a statement that PostgreSQL's scanner cannot read
is cut at its first quote.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pglast import parser

MASK = "***"
# query-string and keyword names whose values are secrets (libpq: password, sslpassword; others by convention)
_SECRET_KEY = re.compile(r"pass|secret|token|key|auth|credential", re.IGNORECASE)
# a URL anywhere in free text: scheme://... up to whitespace or a closing quote/bracket
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")
# libpq keyword/value strings: password=secret or password='sec ret'
_KEYWORD_SECRET = re.compile(
    r"(?P<key>\b[\w.-]*(?:pass|secret|token|credential)[\w.-]*\s*=\s*)(?P<value>'(?:[^'\\]|\\.|'')*'|\S+)",
    re.IGNORECASE,
)
_CONST_TOKENS = {"SCONST", "USCONST", "BCONST", "XCONST", "ICONST", "FCONST"}
_COMMENT_TOKENS = {"C_COMMENT", "SQL_COMMENT"}


def redact_url(url: str) -> str:
    """A URL safe to print: the password of the user-info part and every secret-named query parameter masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if sep else f"{userinfo}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{quote(k, safe='')}={MASK if _SECRET_KEY.search(k) else quote(v, safe='/:,')}" for k, v in pairs
        )
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_sql(sql: str) -> str:
    """The statement with every literal replaced by ``$n`` / ``'***'`` and comments removed.

    PostgreSQL's own scanner finds the constants, so this works for utility statements that pg_stat_statements
    does not normalize (``CREATE SERVER … OPTIONS``, ``COPY … PROGRAM``) and for text that does not parse."""
    try:
        tokens = parser.scan(sql)
    except Exception:
        cut = min((i for i in (sql.find("'"), sql.find("$$"), sql.find("--"), sql.find("/*")) if i >= 0), default=-1)
        return sql if cut < 0 else sql[:cut] + MASK
    out: list[str] = []
    last = 0
    for token in tokens:
        if token.name in _CONST_TOKENS:
            out.append(sql[last : token.start])
            out.append("$?" if token.name in ("ICONST", "FCONST") else "'***'")
            last = token.end + 1
        elif token.name in _COMMENT_TOKENS:
            out.append(sql[last : token.start])
            last = token.end + 1
    out.append(sql[last:])
    return "".join(out).strip()


def redact_text(text: str) -> str:
    """Free text (an error message, a log line) with URLs and ``key=value`` secrets masked."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _KEYWORD_SECRET.sub(lambda m: m.group("key") + MASK, text)
