"""Read PostgreSQL server logs (stderr, csvlog, jsonlog; plain or .gz) into timed statements, streaming.

What we keep is what ``log_min_duration_statement`` / ``log_duration`` and auto_explain write:

    2026-11-24 10:00:00.123 UTC [4242] app@shop LOG:  duration: 12.345 ms  statement: SELECT ...
    ... LOG:  duration: 0.051 ms  parse <unnamed>: SELECT ... WHERE id = $1      (extended protocol)
    ... LOG:  duration: 3.100 ms  execute <unnamed>: SELECT ... WHERE id = $1
    ... DETAIL:  parameters: $1 = '42'                                           (kept apart, never shown)
    ... LOG:  duration: 15.2 ms  plan:\\n\\tQuery Text: SELECT ...\\n\\tSeq Scan on ... (auto_explain)

The ``log_line_prefix`` varies by site (``%m [%p]``, RDS's ``%t:%r:%u@%d:[%p]:``...), so records are
found by their severity marker (``LOG:  ``) instead of a fixed prefix, and pid/user/database are taken
from the prefix when it has them. Lines that look like neither a record nor a continuation are counted as
malformed and skipped; nothing in a log can make the reader raise.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SEVERITY = re.compile(
    r"(?:^|(?<=[\s:\]]))(LOG|ERROR|WARNING|FATAL|PANIC|DETAIL|HINT|STATEMENT|CONTEXT|NOTICE|INFO|"
    r"DEBUG[1-5]?|LOCATION|QUERY):  "
)
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: ?(?:[A-Z]{2,5}|[+-]\d\d(?::?\d\d)?))?)")
PID = re.compile(r"\[(\d+)\]")
USER_DB = re.compile(r"([\w.\-\[\]]+)@([\w.\-\[\]]+)")
DURATION = re.compile(
    r"^duration: (?P<ms>\d+(?:\.\d+)?) ms(?:\s+(?P<kind>statement|execute|parse|bind|plan)(?P<name> [^:]*)?:[ \t]?)?",
)
PLAN_NODE = re.compile(r"\(cost=|\(actual |^\s*(->|Planning|Execution|Buffers|Settings|JIT)\b")
CSV_HEAD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Za-z0-9+\-:]+,")


@dataclass(frozen=True)
class LogEntry:
    duration_ms: float
    statement: str  # the SQL text (for `execute <name>:` the statement text; bind params NOT included)
    kind: str  # "statement" | "execute" | "parse" | "bind" | "plan" (auto_explain) | "duration" (no text)
    timestamp: str | None
    pid: int | None
    user: str | None
    database: str | None
    plan: str | None = None  # auto_explain plan text when present
    parameters: str | None = None  # the DETAIL: parameters: line, kept separate (never printed unless asked)


@dataclass
class ParseResult:
    entries: list[LogEntry] = field(default_factory=list)
    malformed: int = 0  # lines that looked like log records but could not be understood
    lines: int = 0
    records: int = 0  # log records of any kind (LOG, ERROR, DETAIL, ...)

    def extend(self, other: ParseResult) -> None:
        self.entries.extend(other.entries)
        self.malformed += other.malformed
        self.lines += other.lines
        self.records += other.records


@dataclass
class _Record:
    severity: str
    message: str
    timestamp: str | None = None
    pid: int | None = None
    user: str | None = None
    database: str | None = None
    detail: str | None = None


def _split_plan(body: str) -> tuple[str, str | None]:
    """(query text, plan) from an auto_explain message body, text or JSON format."""
    stripped = body.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            return str(doc.get("Query Text", "")), json.dumps(doc.get("Plan"), indent=1)
    query: list[str] = []
    plan: list[str] = []
    in_query = False
    for raw in body.splitlines():
        line = raw.strip("\t\r ")
        if line.startswith("Query Text:"):
            in_query = True
            query.append(line[len("Query Text:") :].strip())
            continue
        if in_query and line and not PLAN_NODE.search(raw) and not plan:
            query.append(line)
            continue
        in_query = False
        if line:
            plan.append(raw.rstrip())
    return "\n".join(query).strip(), ("\n".join(plan) or None)


def entry_from(record: _Record) -> LogEntry | None:
    """A timed statement from one LOG record, or None for records of other kinds."""
    if record.severity != "LOG" or not record.message.startswith("duration:"):
        return None
    match = DURATION.match(record.message)
    if match is None:
        raise ValueError("unparseable duration line")
    kind = match.group("kind") or "duration"
    body = record.message[match.end() :]
    plan = None
    if kind == "plan":
        statement, plan = _split_plan(body)
    else:
        statement = body.strip()
    parameters = None
    if record.detail and record.detail.startswith("parameters:"):
        parameters = record.detail
    return LogEntry(
        duration_ms=float(match.group("ms")),
        statement=statement,
        kind=kind,
        timestamp=record.timestamp,
        pid=record.pid,
        user=record.user,
        database=record.database,
        plan=plan,
        parameters=parameters,
    )


def _prefix_fields(prefix: str) -> tuple[str | None, int | None, str | None, str | None]:
    ts = TIMESTAMP.match(prefix)
    pid = PID.search(prefix)
    user_db = USER_DB.search(prefix)
    user = database = None
    if user_db and user_db.group(1) not in ("[unknown]",):
        user, database = user_db.group(1), user_db.group(2)
    return (
        ts.group(1) if ts else None,
        int(pid.group(1)) if pid else None,
        user,
        database,
    )


def _stderr_records(lines: Iterable[str], result: ParseResult) -> Iterator[_Record]:
    current: _Record | None = None
    for raw in lines:
        result.lines += 1
        line = raw.rstrip("\n\r")
        if line.startswith("\t") and current is not None:
            current.message += "\n" + line[1:]
            continue
        if not line.strip():
            continue
        marker = SEVERITY.search(line)
        if marker is None:
            result.malformed += 1
            continue
        timestamp, pid, user, database = _prefix_fields(line[: marker.start()])
        record = _Record(marker.group(1), line[marker.end() :], timestamp, pid, user, database)
        result.records += 1
        if record.severity == "DETAIL" and current is not None and current.pid == record.pid:
            current.detail = record.message
            continue
        if current is not None:
            yield current
        current = record
    if current is not None:
        yield current


def _csv_records(lines: Iterable[str], result: ParseResult) -> Iterator[_Record]:
    counted = _CountingLines(lines, result)
    for row in csv.reader(counted):
        if len(row) < 14:
            result.malformed += 1
            continue
        result.records += 1
        pid = int(row[3]) if row[3].isdigit() else None
        yield _Record(
            severity=row[11],
            message=row[13],
            timestamp=row[0] or None,
            pid=pid,
            user=row[1] or None,
            database=row[2] or None,
            detail=row[14] or None if len(row) > 14 else None,
        )


def _json_records(lines: Iterable[str], result: ParseResult) -> Iterator[_Record]:
    for raw in lines:
        result.lines += 1
        if not raw.strip():
            continue
        try:
            doc: Any = json.loads(raw)
        except ValueError:
            result.malformed += 1
            continue
        if not isinstance(doc, dict) or "message" not in doc:
            result.malformed += 1
            continue
        result.records += 1
        pid = doc.get("pid")
        yield _Record(
            severity=str(doc.get("error_severity", "")),
            message=str(doc["message"]),
            timestamp=doc.get("timestamp"),
            pid=pid if isinstance(pid, int) else None,
            user=doc.get("user"),
            database=doc.get("dbname"),
            detail=doc.get("detail"),
        )


class _CountingLines:
    """Line iterator for csv.reader that counts physical lines as they are read."""

    def __init__(self, lines: Iterable[str], result: ParseResult) -> None:
        self.stream = lines
        self.result = result

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.result.lines += 1
            yield line


def detect_format(first_line: str) -> str:
    stripped = first_line.lstrip()
    if stripped.startswith("{"):
        return "jsonlog"
    if CSV_HEAD.match(stripped):
        return "csvlog"
    return "stderr"


def _parse_stream(stream: IO[str], fmt: str) -> ParseResult:
    result = ParseResult()
    lines: Iterable[str] = stream
    if fmt == "auto":
        head = stream.readline()
        fmt = detect_format(head)
        lines = itertools.chain([head], stream)  # put back the line read for detection
    if fmt == "csvlog":
        records: Iterator[_Record] = _csv_records(lines, result)
    elif fmt == "jsonlog":
        records = _json_records(lines, result)
    else:
        records = _stderr_records(lines, result)
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error:
            result.malformed += 1
            break
        try:
            entry = entry_from(record)
        except ValueError:
            result.malformed += 1
            continue
        if entry is not None:
            result.entries.append(entry)
    return result


def parse_text(text: str, fmt: str = "auto", log_line_prefix: str | None = None) -> ParseResult:
    """Parse log text already in memory (tests, stdin). ``log_line_prefix`` is accepted for symmetry:
    records are found by their severity marker, whatever the prefix."""
    return _parse_stream(io.StringIO(text), fmt)


def open_log(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace", newline="")


def read_logs(paths: Sequence[Path], log_line_prefix: str | None = None, fmt: str = "auto") -> ParseResult:
    """Parse each file (streamed, never loaded whole); raises OSError for a missing/unreadable file."""
    total = ParseResult()
    for path in paths:
        with open_log(Path(path)) as stream:
            total.extend(_parse_stream(stream, fmt))
    return total
