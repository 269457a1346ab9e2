"""Read PostgreSQL server logs (stderr, csvlog, jsonlog; plain or .gz) into timed statements, streaming.

What we keep is what ``log_min_duration_statement`` / ``log_duration`` and auto_explain write:

    2026-11-24 10:00:00.123 UTC [4242] app@shop LOG:  duration: 12.345 ms  statement: SELECT ...
    ... LOG:  duration: 0.051 ms  parse <unnamed>: SELECT ... WHERE id = $1      (extended protocol)
    ... LOG:  duration: 3.100 ms  execute <unnamed>: SELECT ... WHERE id = $1
    ... DETAIL:  parameters: $1 = '42'                                           (kept apart, never shown)
    ... LOG:  duration: 15.2 ms  plan:\\n\\tQuery Text: SELECT ...\\n\\tQuery Parameters: $1 = '42'\\n\\tSeq Scan ...

The ``log_line_prefix`` varies by site (``%m [%p]``, RDS's ``%t:%r:%u@%d:[%p]:``...), so records are
found by their severity marker (``LOG:  ``) instead of a fixed prefix, and pid/user/database are taken
from the prefix when it has them. Lines that look like neither a record nor a continuation are counted as
malformed and skipped; nothing in a log can make the reader raise.

Memory stays flat whatever the file size (a log is data an attacker may shape):

* physical lines are read in chunks of :data:`LINE_CHUNK` characters; the rest of a longer line is skipped
  (only its length and its quote count are kept), so a 1 GB line is never held whole;
* one record (a stderr message with its continuation lines, a csvlog row over several lines) keeps at most
  :data:`RECORD_CAP` characters; a longer one is counted as oversized;
* a statement longer than :data:`STATEMENT_CAP` is never handed to the SQL parser (a 10 MB nested expression
  takes over a gigabyte inside it): it becomes an *oversized* entry that carries only its first
  :data:`OVERSIZED_PREFIX` characters, so it is still counted (by a hash of that prefix);
* entries are yielded one at a time (:func:`read_logs`), never collected.

auto_explain's ``Query Parameters:`` line (PostgreSQL 16+) holds the bound values of the statement: it is taken
out of the plan here, so the query text of a plan is the statement alone (and groups with its own duration line).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import stat
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

from pgpulse.errors import UserError
from pgpulse.sql.redact import is_plan_parameter_line

LINE_CHUNK = 64 * 1024  # characters of one physical line read at a time
RECORD_CAP = 1024 * 1024  # characters of one log record kept; the rest is counted, not stored
LINE_COST = 64  # what one more line of a record costs beyond its characters (a str object, a list slot)
STATEMENT_CAP = 64 * 1024  # statements longer than this are counted, never parsed
OVERSIZED_PREFIX = 1024  # what an oversized statement is identified (hashed) by
MAX_DURATION_MS = 1e10  # ~116 days: a longer "duration" is not one PostgreSQL wrote

SEVERITIES = frozenset(
    [
        "LOG",
        "ERROR",
        "WARNING",
        "FATAL",
        "PANIC",
        "DETAIL",
        "HINT",
        "STATEMENT",
        "CONTEXT",
        "NOTICE",
        "INFO",
        "DEBUG",
        "DEBUG1",
        "DEBUG2",
        "DEBUG3",
        "DEBUG4",
        "DEBUG5",
        "LOCATION",
        "QUERY",
    ]
)
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: ?(?:[A-Z]{2,5}|[+-]\d\d(?::?\d\d)?))?)")
PREFIX_CHARS = 512  # a log_line_prefix is read from at most this many characters (longer ones are not prefixes)
_USER_BEFORE_AT = re.compile(r"[\w.\-\[\]]{1,64}\Z")
_DB_AFTER_AT = re.compile(r"[\w.\-\[\]]{1,64}")
# At most 15 integer digits: "duration: 999…9 ms" (400 digits) is not a duration and must not become Infinity.
DURATION = re.compile(
    r"^duration: (?P<ms>\d{1,15}(?:\.\d{1,12})?) ms(?:\s+(?P<kind>statement|execute|parse|bind|plan)"
    r"(?P<name> [^:\n]*)?:[ \t]?)?",
)
PLAN_NODE = re.compile(r"\(cost=|\(actual |^\s*(->|Planning|Execution|Buffers|Settings|JIT)\b")
QUERY_END = re.compile(r"(?:Plan|Query Identifier|Settings|Planning|JIT):")
CSV_HEAD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Za-z0-9+\-:]+,")
# the start of an oversized jsonlog line: enough to tell a timed statement from anything else
_JSON_SEVERITY = re.compile(r'"error_severity"\s*:\s*"(\w+)"')
_JSON_MESSAGE = re.compile(r'"message"\s*:\s*"(duration: [^"\\]{0,200})')
_XML_QUERY = re.compile(r"<Query-Text>(?P<text>.*?)</Query-Text>", re.DOTALL)
_XML_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&apos;": "'"}
_CSV_COLUMNS = 14  # csvlog rows have 22-26 columns; the message is the 14th


class LogReadError(UserError, OSError):
    """A log file cannot be read (missing, a directory, not a file, corrupt compression); ``str()`` is one line
    that says which file and what to do."""


# What a timed log line is: the duration line's own word (``duration: 1.2 ms  execute <name>: …``), ``plan`` for an
# auto_explain plan, ``duration`` for a bare duration line (log_duration without a statement).
EntryKind = Literal["statement", "execute", "parse", "bind", "plan", "duration"]


@dataclass(frozen=True)
class LogEntry:
    duration_ms: float
    statement: str  # the SQL text (for `execute <name>:` the statement text; bind params NOT included)
    kind: EntryKind
    timestamp: str | None
    pid: int | None
    user: str | None
    database: str | None
    # auto_explain's plan without its Query Parameters, but with the constants of its conditions: pass it through
    # pgpulse.sql.redact_plan before showing it (QueryStats.plan is). Redacting every plan here would triple the
    # reading time of a log with auto_explain on; only the slowest plan of each query shape is ever shown.
    plan: str | None = None
    parameters: str | None = None  # the DETAIL: parameters: line, kept separate (never printed)
    oversized: bool = False  # statement over STATEMENT_CAP: ``statement`` is only its first characters


@dataclass
class ParseResult:
    """What :func:`parse_text` found in text already in memory: every entry, and the counters."""

    entries: list[LogEntry] = field(default_factory=list)
    malformed: int = 0  # lines that looked like log records but could not be understood
    lines: int = 0
    records: int = 0  # log records of any kind (LOG, ERROR, DETAIL, ...)
    oversized: int = 0  # records or statements over a size cap: counted, not parsed

    def extend(self, other: ParseResult) -> None:
        self.entries.extend(other.entries)
        self.malformed += other.malformed
        self.lines += other.lines
        self.records += other.records
        self.oversized += other.oversized


class _Counts(Protocol):
    """The counters a reader updates as it goes (ParseResult and LogStream both have them)."""

    malformed: int
    lines: int
    records: int
    oversized: int


class CutLine(str):
    """The first :data:`LINE_CHUNK` characters of a longer physical line, with the whole line's length and
    number of double quotes (csvlog needs those to find where the record ends)."""

    length: int
    quotes: int


def _bounded_lines(stream: IO[str], counts: _Counts) -> Iterator[str]:
    """Physical lines, each at most LINE_CHUNK characters long (a longer one comes as a :class:`CutLine`)."""
    readline = stream.readline
    while True:
        chunk = readline(LINE_CHUNK)
        if not chunk:
            return
        counts.lines += 1
        if len(chunk) < LINE_CHUNK or chunk.endswith("\n"):
            yield chunk
            continue
        length, quotes = len(chunk), chunk.count('"')
        while True:  # skip the rest of the line: never more than one chunk in memory
            more = readline(LINE_CHUNK)
            length += len(more)
            quotes += more.count('"')
            if not more or more.endswith("\n"):
                break
        cut = CutLine(chunk)
        cut.length, cut.quotes = length, quotes
        yield cut


@dataclass(slots=True)
class _Record:
    severity: str
    head: str  # the message's first line
    timestamp: str | None = None
    pid: int | None = None
    user: str | None = None
    database: str | None = None
    detail: str | None = None
    more: list[str] | None = None  # continuation lines, up to RECORD_CAP characters in all
    size: int = 0  # characters of the whole message, kept or not
    cut: bool = False  # the message was longer than RECORD_CAP: only its start is kept

    def add(self, text: str, length: int) -> None:
        # Each kept line costs its characters plus a string object: counted as LINE_COST more, so a million
        # one-character lines cannot hold 60 MB of objects under a 1 MiB cap.
        if self.size + length + LINE_COST > RECORD_CAP or self.cut:
            self.cut = True
        else:
            if self.more is None:
                self.more = []
            self.more.append(text)
        self.size += length + LINE_COST

    @property
    def message(self) -> str:
        return self.head if not self.more else "\n".join([self.head, *self.more])


def _split_plan(body: str) -> tuple[str, str | None]:
    """(query text, plan without its Query Parameters) from an auto_explain message body: text, YAML, XML, JSON."""
    stripped = body.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
            json_plan = json.dumps(doc.get("Plan"), indent=1) if isinstance(doc, dict) else None
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the stack: read as text
            doc = json_plan = None
        if isinstance(doc, dict):
            text = doc.get("Query Text", "")  # "Query Parameters" is left out with everything but the plan
            return (text if isinstance(text, str) else ""), json_plan
    if stripped.startswith("<"):
        match = _XML_QUERY.search(body)
        xml_query = "" if match is None else _xml_unescape(match.group("text"))
        rest = body if match is None else body[: match.start()] + body[match.end() :]
        kept = [line for line in rest.splitlines() if line.strip() and not is_plan_parameter_line(line)]
        return xml_query.strip(), ("\n".join(kept) or None)
    query: list[str] = []
    plan: list[str] = []
    in_query = False
    for raw in body.splitlines():
        line = raw.strip("\t\r ")
        if line.startswith("Query Text:"):
            in_query = True
            query.append(line[len("Query Text:") :].strip())
            continue
        if is_plan_parameter_line(raw):  # bound values (PostgreSQL 16+): neither query nor plan
            in_query = False
            continue
        if QUERY_END.match(line):  # YAML's "Plan:", "Query Identifier:" (compute_query_id): the query ended
            in_query = False
        if in_query and line and not PLAN_NODE.search(raw) and not plan:
            query.append(line)
            continue
        in_query = False
        if line:
            plan.append(raw.rstrip())
    text = "\n".join(query).strip()
    if len(query) == 1 and text.startswith('"') and text.endswith('"'):  # YAML format quotes the text
        text = text[1:-1].replace('""', '"')
    return text, ("\n".join(plan) or None)


def _xml_unescape(text: str) -> str:
    return re.sub(r"&(?:lt|gt|amp|quot|apos);", lambda m: _XML_ENTITIES[m.group(0)], text)


def _duration(message: str) -> tuple[re.Match[str], float]:
    match = DURATION.match(message)
    if match is None:
        raise ValueError("unparseable duration line")
    ms = float(match.group("ms"))
    if not math.isfinite(ms) or ms > MAX_DURATION_MS:
        raise ValueError("not a duration PostgreSQL would write")
    return match, ms


def _oversized(record: _Record, match: re.Match[str], ms: float, body: str) -> LogEntry:
    return LogEntry(
        duration_ms=ms,
        statement=body[:OVERSIZED_PREFIX],
        kind=cast(EntryKind, match.group("kind") or "duration"),  # the regex admits these words only
        timestamp=record.timestamp,
        pid=record.pid,
        user=record.user,
        database=record.database,
        oversized=True,
    )


def entry_from(record: _Record) -> LogEntry | None:
    """A timed statement from one LOG record, or None for records of other kinds."""
    if record.severity != "LOG" or not record.head.startswith("duration:"):
        return None
    message = record.message
    match, ms = _duration(message)
    kind = cast(EntryKind, match.group("kind") or "duration")  # the regex admits these words only
    body = message[match.end() :]
    plan = None
    if kind == "plan":
        statement, plan = _split_plan(body)
        if record.cut and (plan is None or not statement):  # cut inside the query text: we cannot know it
            return _oversized(record, match, ms, body.strip())
        if record.cut and plan is not None:
            plan += f"\n(plan cut: the log record is over {RECORD_CAP // 1024} KiB)"
    else:
        statement = body.strip()
        if record.cut:
            return _oversized(record, match, ms, statement)
    if len(statement) > STATEMENT_CAP:
        return _oversized(record, match, ms, statement)
    parameters = None
    if record.detail and record.detail[:11].lower() == "parameters:":  # "Parameters:" since PostgreSQL 16
        parameters = record.detail
    return LogEntry(
        duration_ms=ms,
        statement=statement,
        kind=kind,
        timestamp=record.timestamp,
        pid=record.pid,
        user=record.user,
        database=record.database,
        plan=plan,
        parameters=parameters,
    )


def find_severity(line: str) -> tuple[int, int, str] | None:
    """(start, end, severity) of the record's severity marker (``LOG:  ``): the first ``WORD:  `` whose word is a
    severity and that follows the start of the line, a space, a colon or a bracket. String searches, not a regular
    expression: this runs on every line of the log."""
    colon = line.find(":  ")
    while colon > 0:
        start = max(line.rfind(" ", 0, colon), line.rfind(":", 0, colon), line.rfind("]", 0, colon)) + 1
        start = max(start, line.rfind("\t", 0, colon) + 1)
        word = line[start:colon]
        if word in SEVERITIES:
            return start, colon + 3, word
        colon = line.find(":  ", colon + 1)
    return None


def _prefix_fields(prefix: str) -> tuple[str | None, int | None, str | None, str | None]:
    """Timestamp, pid, user and database from whatever ``log_line_prefix`` wrote (``%m [%p] %u@%d``, RDS's
    ``%t:%r:%u@%d:[%p]:``...). Bounded string searches: a hostile prefix cannot make this slow."""
    prefix = prefix[:PREFIX_CHARS]
    ts = TIMESTAMP.match(prefix)
    rest = prefix[ts.end() :] if ts else prefix
    cached = _PREFIX_CACHE.get(rest)  # the part after the timestamp repeats for every line of a session
    if cached is None:
        cached = _session_fields(rest)
        if len(_PREFIX_CACHE) >= _PREFIX_CACHE_SIZE:
            _PREFIX_CACHE.clear()
        _PREFIX_CACHE[rest] = cached
    return (ts.group(1) if ts else None, *cached)


_PREFIX_CACHE: dict[str, tuple[int | None, str | None, str | None]] = {}
_PREFIX_CACHE_SIZE = 4096  # prefixes of at most PREFIX_CHARS: at most ~2 MB


def _session_fields(prefix: str) -> tuple[int | None, str | None, str | None]:
    """pid, user and database from the prefix without its timestamp."""
    pid = None
    bracket = prefix.find("[")
    while bracket != -1:
        close = prefix.find("]", bracket)
        if close == -1:
            break
        inner = prefix[bracket + 1 : close]
        if 0 < len(inner) <= 10 and inner.isascii() and inner.isdigit():
            pid = int(inner)
            break
        bracket = prefix.find("[", bracket + 1)
    user = database = None
    at = prefix.find("@")
    while at > 0:
        before = _USER_BEFORE_AT.search(prefix, max(0, at - 64), at)
        after = _DB_AFTER_AT.match(prefix, at + 1)
        if before and after:
            if before.group(0) != "[unknown]":
                user, database = before.group(0), after.group(0)
            break
        at = prefix.find("@", at + 1)
    return pid, user, database


def _length(line: str) -> int:
    return line.length if isinstance(line, CutLine) else len(line)


def _same_pid(record: _Record | None, prefix: str) -> bool:
    return record is not None and _prefix_fields(prefix)[1] == record.pid


def _stderr_records(lines: Iterable[str], counts: _Counts) -> Iterator[_Record]:
    current: _Record | None = None
    # Continuation lines belong to the last record; after "DETAIL:  parameters: $1 = 'a<newline>b'" they are the
    # rest of a bound value, and must not be appended to the statement.
    collecting = False
    for raw in lines:
        if raw.startswith("\t") and current is not None:
            if collecting:  # only a timed statement's lines are kept; an ERROR's quoted statement is not
                text = raw[1:].rstrip("\n\r")
                current.add(text, _length(raw) - 1)
            continue
        line = raw.rstrip("\n\r")
        marker = find_severity(line)
        if marker is None:
            if line.strip():
                counts.malformed += 1
            continue
        start, end, severity = marker
        head = line[end:]
        counts.records += 1
        if severity == "DETAIL" and collecting and _same_pid(current, line[:start]):
            assert current is not None  # collecting implies a current record
            current.detail = head  # the bound values of the statement just read
            collecting = False
            continue
        timed = severity == "LOG" and head.startswith("duration:")
        # only a timed statement needs its prefix read (this runs on every record)
        fields = _prefix_fields(line[:start]) if timed else (None, None, None, None)
        record = _Record(severity, head, *fields, size=_length(raw), cut=isinstance(raw, CutLine))
        if current is not None:
            yield current
        current = record
        collecting = timed
    if current is not None:
        yield current


def _csv_rows(lines: Iterable[str], counts: _Counts) -> Iterator[tuple[str, bool]]:
    """Whole csvlog records (a quoted field may span lines: a record ends at a newline outside quotes), each at
    most RECORD_CAP characters, with whether it was cut. Python's csv module alone would stop at the first field
    over its ``field_size_limit`` and drop the rest of the file."""
    parts: list[str] = []
    size = 0
    odd = False
    cut = False
    for line in lines:
        quotes = line.quotes if isinstance(line, CutLine) else line.count('"')
        length = _length(line)
        if not cut:
            if size + len(line) + LINE_COST <= RECORD_CAP:
                parts.append(line)  # for a CutLine, its first LINE_CHUNK characters
            cut = isinstance(line, CutLine) or size + length + LINE_COST > RECORD_CAP
        size += length + LINE_COST
        odd ^= bool(quotes & 1)
        if not odd:
            yield "".join(parts), cut
            parts, size, cut = [], 0, False
    if parts:
        counts.malformed += 1  # a quoted field still open at the end of the file: the record was cut short


def _csv_records(lines: Iterable[str], counts: _Counts) -> Iterator[_Record]:
    if csv.field_size_limit() < RECORD_CAP + 1:
        csv.field_size_limit(RECORD_CAP + 1)  # records are already bounded by RECORD_CAP
    for text, cut in _csv_rows(lines, counts):
        if not text.strip():
            continue
        if cut and text.count('"') % 2:
            text += '"'  # close the field the cut left open, to read the columns before it
        try:
            row = next(csv.reader([text]), [])
        except csv.Error:  # NUL byte, stray quote: not a row PostgreSQL wrote
            counts.malformed += 1
            continue
        if len(row) < _CSV_COLUMNS:
            if cut:
                counts.oversized += 1
            else:
                counts.malformed += 1
            continue
        counts.records += 1
        pid = int(row[3]) if row[3].isascii() and row[3].isdigit() and len(row[3]) <= 10 else None
        yield _Record(
            severity=row[11],
            head=row[13],
            timestamp=row[0] or None,
            pid=pid,
            user=row[1] or None,
            database=row[2] or None,
            detail=row[14] or None if len(row) > 14 else None,
            cut=cut,
        )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _json_records(lines: Iterable[str], counts: _Counts) -> Iterator[_Record]:
    for raw in lines:
        if isinstance(raw, CutLine):  # over LINE_CHUNK: only a timed statement's duration can be read from it
            severity, message = _JSON_SEVERITY.search(raw), _JSON_MESSAGE.search(raw)
            if severity is None:
                counts.malformed += 1
                continue
            counts.records += 1
            head = message.group(1) if message else ""
            yield _Record(severity=severity.group(1), head=head, size=raw.length, cut=True)
            continue
        if not raw.strip():
            continue
        try:
            doc: Any = json.loads(raw)
        except (ValueError, RecursionError):
            counts.malformed += 1
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("message"), str):
            counts.malformed += 1
            continue
        counts.records += 1
        pid = doc.get("pid")
        yield _Record(
            severity=_str_or_none(doc.get("error_severity")) or "",
            head=doc["message"],
            timestamp=_str_or_none(doc.get("timestamp")),
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            user=_str_or_none(doc.get("user")),
            database=_str_or_none(doc.get("dbname")),
            detail=_str_or_none(doc.get("detail")),
        )


def detect_format(first_line: str) -> str:
    stripped = first_line.lstrip()
    if stripped.startswith("{"):
        return "jsonlog"
    if CSV_HEAD.match(stripped):
        return "csvlog"
    return "stderr"


def _entries(stream: IO[str], fmt: str, counts: _Counts) -> Iterator[LogEntry]:
    lines = _bounded_lines(stream, counts)
    if fmt == "auto":
        head = next(lines, "")
        fmt = detect_format(head)
        lines = _chain(head, lines)  # put back the line read for detection
    if fmt == "csvlog":
        records = _csv_records(lines, counts)
    elif fmt == "jsonlog":
        records = _json_records(lines, counts)
    else:
        records = _stderr_records(lines, counts)
    for record in records:
        try:
            entry = entry_from(record)
        except ValueError:
            counts.malformed += 1
            continue
        if record.cut or (entry is not None and entry.oversized):
            counts.oversized += 1  # a record over RECORD_CAP, or a statement over STATEMENT_CAP
        if entry is not None:
            yield entry


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def parse_text(text: str, fmt: str = "auto", log_line_prefix: str | None = None) -> ParseResult:
    """Parse log text already in memory (tests, stdin). ``log_line_prefix`` is accepted for symmetry:
    records are found by their severity marker, whatever the prefix."""
    result = ParseResult()
    result.entries.extend(_entries(io.StringIO(text), fmt, result))
    return result


def check_log_path(path: Path) -> None:
    """Raise :class:`LogReadError` unless ``path`` is something a log can be read from: a file, or a FIFO (read as
    a stream, e.g. ``pgpulse logs <(zcat old.log.gz)``)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise LogReadError(
            f"{path}: no such log file (give the path of a PostgreSQL server log, e.g. postgresql.log)"
        ) from None
    except OSError as exc:
        raise LogReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise LogReadError(f"{path}: is a directory: pass the log files inside it (e.g. {path}/*.log)")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise LogReadError(f"{path}: is not a regular file or a FIFO: pass a PostgreSQL server log file")


def open_log(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    # newline="\n": a bare carriage return inside a statement is not a line break (PostgreSQL wrote it as is)
    return path.open("r", encoding="utf-8", errors="replace", newline="\n")


class LogStream:
    """The timed statements of several log files, read one at a time as :attr:`entries` is iterated (once).

    The counters grow as the stream is read; read them after iterating. A file that becomes unreadable part way
    (a corrupt or truncated .gz) ends that file's entries and is listed in :attr:`errors` (one line each): a
    partial read is never silent, and never a traceback."""

    def __init__(self, paths: Sequence[Path], fmt: str = "auto") -> None:
        self.paths = [Path(p) for p in paths]
        self.fmt = fmt
        self.malformed = 0
        self.lines = 0
        self.records = 0
        self.oversized = 0
        self.timed = 0  # entries yielded
        self.errors: list[str] = []
        self._started = False

    @property
    def entries(self) -> Iterator[LogEntry]:
        if self._started:
            raise RuntimeError("a LogStream is read once")
        self._started = True
        return self._read()

    def _read(self) -> Iterator[LogEntry]:
        for path in self.paths:
            start = self.lines
            try:
                with open_log(path) as stream:
                    for entry in _entries(stream, self.fmt, self):
                        self.timed += 1
                        yield entry
            except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
                reason = getattr(exc, "strerror", None) or "I/O error"
                if path.suffix == ".gz":
                    reason = "corrupt or truncated gzip data"
                self.errors.append(f"{path}: {reason} after {self.lines - start:,} lines")


def read_logs(paths: Sequence[Path], log_line_prefix: str | None = None, fmt: str = "auto") -> LogStream:
    """The logs as a stream of entries (see :class:`LogStream`); raises :class:`LogReadError` (an OSError) at once
    for a path that is missing, a directory or not a file, and for a .gz file whose header is not gzip."""
    for path in paths:
        check_log_path(Path(path))
        if Path(path).suffix == ".gz" and stat.S_ISREG(Path(path).stat().st_mode):
            try:
                with gzip.open(path, "rb") as probe:
                    probe.read(1)
            except (OSError, EOFError, zlib.error):
                raise LogReadError(f"cannot read log {path}: not a readable gzip file (corrupt or truncated)") from None
    return LogStream(paths, fmt)
