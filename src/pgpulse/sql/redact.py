"""Redaction: one module serves every output format and log event.

Secrets hide in four places pgpulse prints: database URLs (the password in the user-info part, or in the query
string as ``?password=`` / ``sslpassword=``; libpq keyword strings ``password=…``), SQL text (literals: query
parameters in a WHERE clause, ``CREATE SERVER … OPTIONS (password '…')``, ``COPY … PROGRAM '…'``,
``ALTER ROLE … PASSWORD '…'``, and comments), query plans (auto_explain's ``Query Parameters:`` line and the
constants PostgreSQL prints inside ``Filter:``, ``Index Cond:``, ``Hash Cond:``… in text, YAML, XML or JSON
format), and free text that quotes any of them (a driver's error message, a log line). Redaction errs on the side
of hiding: text that PostgreSQL's scanner cannot read is cut at its first quote, and the numbers before the cut are
masked too.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

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
_NUMBER_TOKENS = {"ICONST", "FCONST"}
_COMMENT_TOKENS = {"C_COMMENT", "SQL_COMMENT"}
_IDENT_TOKENS = {"IDENT", "UIDENT"}
_HIDING = re.compile(r"['\d$\\]")  # what a literal inside a double-quoted "identifier" would show
# where a statement the scanner refused is cut: the first quote, dollar quote or comment
_CUT_AT = re.compile(r"['\"$\\]|--|/\*")
_NUMBER = re.compile(r"(?<![\w$])[+-]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def redact_url(url: str) -> str:
    """A URL safe to print: the password of the user-info part and every secret-named query parameter masked.

    A raw ``#``, ``/`` or ``?`` in a password (SQLAlchemy accepts them; ``urlsplit`` would read them as a fragment or
    path and print the rest of the password) cannot hide it: everything up to the *last* ``@`` after the scheme is
    the user-info part. An ``@`` later in the URL makes this over-mask, never under-mask."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # a libpq keyword string (host=… password=…) or not a URL at all
        return _KEYWORD_SECRET.sub(lambda m: m.group("key") + MASK, url)
    userinfo = ""
    if sep and "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
    try:
        parts = urlsplit(f"{scheme}{sep}{rest}")
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if userinfo:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{netloc}" if colon else f"{userinfo}@{netloc}"
    else:
        cut = _password_without_at(netloc)
        if cut is not None:
            # ``user:secret`` with no ``@`` (a URL missing its host): the "port" is a password. Where it ends is
            # unknowable (a raw ``/``, ``?`` or ``#`` in it splits it into path, query or fragment), so
            # everything after it is masked too.
            return f"{scheme}://{netloc[:cut]}:{MASK}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        # a value can carry a secret of its own: options=-c password=… (a key=value inside, percent-encoded)
        query = "&".join(
            f"{quote(k, safe='')}={MASK if _SECRET_KEY.search(k) else quote(_mask_keywords(v), safe='/:,*')}"
            for k, v in pairs
        )
    # built by hand: urlunsplit drops the empty host of postgresql:///db?host=/socket
    return f"{scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "") + (f"#{MASK}" if parts.fragment else "")


def _redact_constants(sql: str, keep_numbers: bool = False, depth: int = 0) -> str:
    """``sql`` with every constant masked and every comment removed, whitespace kept as it was.

    PostgreSQL's own scanner finds the constants. Text it refuses (an unterminated string or comment, as in a
    statement cut at a size limit) is cut at its first quote or comment, and the numbers left before the cut are
    masked as well: a scanner error must never let a literal through.

    What the scanner reads as a double-quoted identifier is redacted inside too when it holds a quote, a digit or
    a dollar sign: plan text in YAML or JSON form wraps whole expressions in double quotes
    (``- "('secret'::text || name)"``), which would otherwise hide their literals from the scanner."""
    try:
        tokens = parser.scan(sql)
    except Exception:  # the message quotes the text "at or near" the error: never shown
        match = _CUT_AT.search(sql)
        head = sql if match is None else sql[: match.start()]
        return _NUMBER.sub("$?", head) + ("" if match is None else MASK)
    out: list[str] = []
    last = 0
    previous: list[str] = ["", ""]  # the two significant tokens before this one
    for token in tokens:
        name = token.name
        if name in _COMMENT_TOKENS:
            out.append(sql[last : token.start])
            last = token.end + 1
            continue
        if name in _IDENT_TOKENS and sql[token.end] == '"' and _HIDING.search(sql, token.start, token.end):
            opening = sql.index('"', token.start, token.end)
            inner = sql[opening + 1 : token.end].replace('""', '"').replace('\\"', '"')
            shown = MASK if depth >= 2 else _redact_constants(inner, keep_numbers, depth + 1)
            out.append(sql[last : opening + 1])
            out.append(shown.replace('"', '""') + '"')
            last = token.end + 1
            previous = [previous[1], name]
            continue
        kept = name in _NUMBER_TOKENS and (keep_numbers or (name == "ICONST" and _positional(previous)))
        if name in _CONST_TOKENS and not kept:
            out.append(sql[last : token.start])
            out.append("$?" if name in _NUMBER_TOKENS else "'***'")
            last = token.end + 1
            name = "MASKED"
        previous = [previous[1], name]
    out.append(sql[last:])
    return "".join(out)


def _positional(previous: list[str]) -> bool:
    """True for the integer of ``ORDER BY 2`` / ``GROUP BY 1, 2 DESC``: a column position, not a value (the
    statement is an error unless it is a small number), so shapes keep it, as pg_stat_statements does."""
    before, last = previous
    return last == "BY" or (last == "ASCII_44" and before in ("ICONST", "ASC", "DESC", "FIRST_P", "LAST_P"))


def redact_sql(sql: str, keep_numbers: bool = False) -> str:
    """The statement with every literal replaced by ``$?`` / ``'***'`` and comments removed.

    PostgreSQL's own scanner finds the constants, so this works for utility statements that pg_stat_statements
    does not normalize (``CREATE SERVER … OPTIONS``, ``COPY … PROGRAM``) and for text that does not parse.
    ``keep_numbers`` is for the output of ``normalize`` on one SELECT/INSERT/UPDATE/DELETE, where every value is
    already ``$n`` and the numbers left are structure (``varchar(10)``, ``ORDER BY 2``) that must stay valid SQL."""
    return _redact_constants(sql, keep_numbers).strip()


def _mask_keywords(text: str) -> str:
    return _KEYWORD_SECRET.sub(lambda m: m.group("key") + MASK, text)


def _password_without_at(netloc: str) -> int | None:
    """Where a non-numeric "port" starts in ``netloc`` (``host:port[,host:port…]``, IPv6 in brackets), or None
    when every port is digits (or absent)."""
    offset = 0
    for host in netloc.split(","):
        rest = host
        if rest.startswith("["):  # [::1]:5432
            end = rest.find("]")
            rest = rest[end + 1 :] if end >= 0 else ""
        head, colon, port = rest.partition(":")
        if colon and port and not port.isdigit():
            return offset + (len(host) - len(rest)) + len(head)
        offset += len(host) + 1
    return None


def redact_text(text: str) -> str:
    """Free text (an error message, a log line) with URLs and ``key=value`` secrets masked."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _KEYWORD_SECRET.sub(lambda m: m.group("key") + MASK, text)


# --- query plans -------------------------------------------------------------------------------------------------

# Plan lines whose value is one of PostgreSQL's counters or settings words, never an expression of the query:
# kept verbatim when the value holds nothing a literal could hide in (no quote, no dollar sign).
_PLAN_COUNTER_LABELS = re.compile(
    r"(?:Planning|Execution|Planning Time|Execution Time|Buffers|I/O Timings|WAL|Rows Removed by (?:Filter|Join "
    r"Filter|Index Recheck)|Heap Fetches|Heap Blocks|Sort Method|Workers Planned|Workers Launched|Worker \d+|"
    r"Buckets|Batches|Memory Usage|Peak Memory Usage|Memory|Storage|Maximum Storage|Subplans Removed|"
    r"(?:Full-sort|Pre-sorted) Groups|Hits|Misses|Evictions|Overflows|Index Searches|Disabled|JIT|Functions|"
    r"Options|Timing|Query Identifier|Sort Space|Planned Partitions|Batches Used|Disk Usage|Estimates|"
    r"Trigger [\w\"$ ]+)\Z"
)
_SAFE_VALUE = re.compile(r"[\w\s.,:=()%/+\-]*\Z")
# "  Label: value" (text and YAML formats); the label is words, digits, spaces and a few signs
_PLAN_LABEL = re.compile(r"(?P<indent>\s*(?:-\s+)?)(?P<label>[A-Z][\w /()\-]*?):(?P<value>(?:\s.*)?)\Z", re.DOTALL)
# A plan node line: "->  Seq Scan on t  (cost=0.00..1.01 rows=1 width=4) (actual time=... rows=1 loops=1)"
_NODE_TAIL = re.compile(r"(?P<tail>(?:\s+\((?:cost=|actual |never executed)[\w.=\s]*\))+)\s*\Z")
_PARAMETER_LINE = re.compile(r"\s*(?:-\s+)?(?:\"?Query Parameters\"?\s*:|<Query-Parameters>)")
_XML_ELEMENT = re.compile(r"(?P<open>\s*<(?P<tag>[\w\-]+)>)(?P<value>.*?)(?P<close></(?P=tag)>\s*)\Z", re.DOTALL)
_XML_TAG_ONLY = re.compile(r"\s*</?[\w\-]+/?>\s*\Z")
_XML_SCALAR = re.compile(r"(?:[\d.]+|true|false)\Z")
# JSON plan keys whose string values are names PostgreSQL chose or catalog identifiers, not expressions
_PLAN_NAME_KEYS = frozenset(
    {
        "Node Type",
        "Parent Relationship",
        "Relation Name",
        "Schema",
        "Alias",
        "Index Name",
        "CTE Name",
        "Subplan Name",
        "Join Type",
        "Strategy",
        "Scan Direction",
        "Sort Method",
        "Sort Space Type",
        "Operation",
        "Partial Mode",
        "Function Name",
        "Trigger Name",
        "Constraint Name",
        "Relation",
        "Command",
    }
)
_IDENTIFIER_LIKE = re.compile(r"[\w .\-\"]*\Z")
PLAN_PARAMETER_KEYS = frozenset({"Query Parameters"})


def is_plan_parameter_line(line: str) -> bool:
    """True for auto_explain's ``Query Parameters:`` line (PostgreSQL 16+): bound values, never shown."""
    return _PARAMETER_LINE.match(line) is not None


def redact_plan_line(line: str) -> str | None:
    """One line of a text/YAML/XML plan with its literals masked; None for a line that must not be shown at all.

    Node lines keep their cost and timing figures; counter lines (``Buffers:``, ``Planning Time:``…) are kept when
    they hold nothing but counters; every other value (``Filter:``, ``Index Cond:``, ``Recheck Cond:``, ``Hash
    Cond:``, ``Output:``, ``Sort Key:``, ``Settings:``, an unknown label or a line with no label) goes through the
    scanner and loses every constant."""
    if is_plan_parameter_line(line):
        return None
    node = _NODE_TAIL.search(line)
    if node is not None and "(cost=" in node.group("tail"):
        return _redact_constants(line[: node.start()]) + node.group("tail")
    labelled = _PLAN_LABEL.match(line)
    if labelled is not None:
        label, value = labelled.group("label"), labelled.group("value")
        if _PLAN_COUNTER_LABELS.match(label) and _SAFE_VALUE.match(value):
            return line
        quoted = value.strip()
        if len(quoted) >= 2 and quoted[0] == quoted[-1] == '"':  # YAML quotes the whole expression
            return f'{labelled.group("indent")}{label}: "{_redact_constants(quoted[1:-1])}"'
        return f"{labelled.group('indent')}{label}:{_redact_constants(value)}"
    if _XML_TAG_ONLY.match(line):
        return line
    element = _XML_ELEMENT.match(line)
    if element is not None:  # XML format: <Filter>(owner = 'x'::text)</Filter>
        value = html.unescape(element.group("value"))  # &apos;secret&apos; is a literal too
        if _XML_SCALAR.match(value):
            return line
        return element.group("open") + _redact_constants(value) + element.group("close")
    return _redact_constants(line)


def redact_plan(plan: str) -> str:
    """A plan as auto_explain logs it (text, YAML, XML, or JSON), safe to print: JSON is redacted field by field
    (:func:`redact_plan_json`), the other formats line by line (:func:`redact_plan_line`)."""
    if plan.lstrip().startswith(("{", "[")):
        try:
            return json.dumps(redact_plan_json(json.loads(plan)), indent=1)
        except (ValueError, RecursionError):
            pass  # not JSON after all, cut short, or nested deeper than the stack: line by line
    kept = (redact_plan_line(line) for line in plan.splitlines())
    return "\n".join(line for line in kept if line is not None)


def redact_plan_json(node: Any, key: str | None = None) -> Any:
    """A JSON plan (the parsed document) with every expression's constants masked and the query parameters
    dropped. Numbers are PostgreSQL's own counters and are kept; strings are expressions unless their key names
    a catalog object or a planner choice."""
    if isinstance(node, dict):
        return {str(k): redact_plan_json(v, str(k)) for k, v in node.items() if str(k) not in PLAN_PARAMETER_KEYS}
    if isinstance(node, list):
        return [redact_plan_json(item, key) for item in node]
    if isinstance(node, str):
        if key in _PLAN_NAME_KEYS and _IDENTIFIER_LIKE.match(node):
            return node
        return _redact_constants(node)
    if node is None or isinstance(node, bool | int | float):
        return node
    return MASK
