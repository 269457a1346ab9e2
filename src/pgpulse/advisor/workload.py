"""Where the queries to advise on come from: pg_stat_statements, a server log, samples of pg_stat_activity,
the command line, a file or standard input; and the filters Dexter has (tables to include or exclude, a minimum
total time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO

import asyncpg

from pgpulse.errors import UserError
from pgpulse.logs import read_logs, summarize
from pgpulse.sql import fingerprint, split_statements

STATEMENTS_SQL = """
SELECT s.queryid, s.query, s.calls, s.total_exec_time AS total_ms, s.mean_exec_time AS mean_ms
  FROM pg_stat_statements s
  JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = current_database()
   AND (s.query = '<insufficient privilege>'  -- counted, to tell the user which grant is missing
        OR (s.query ~* '^\\s*(select|with|update|delete)\\M'
            AND s.query !~* 'pg_catalog\\.|information_schema\\.|pg_stat|hypopg|^\\s*explain'))
   AND s.calls >= $1
   AND ($2::bigint IS NULL OR s.queryid = $2)
   AND s.total_exec_time >= $4
 ORDER BY s.total_exec_time DESC
 LIMIT $3
"""

# Queries running right now in this database, other than this session's and the tools' own.
ACTIVITY_SQL = """
SELECT query
  FROM pg_stat_activity
 WHERE state = 'active'
   AND pid <> pg_backend_pid()
   AND datname = current_database()
   AND backend_type = 'client backend'
   AND query ~* '^\\s*(select|with|update|delete)\\M'
   AND query !~* 'pg_stat_activity|pg_catalog\\.|hypopg'
"""
HIDDEN = "<insufficient privilege>"  # what pg_stat_statements shows for other roles' statements without the role
HIDDEN_MARGIN = 50


class WorkloadError(UserError, RuntimeError):
    """The workload cannot be read; the message says what to do instead."""


class Source(StrEnum):
    """Where a workload query came from; the value is the JSON report's ``source``."""

    pg_stat_statements = "pg_stat_statements"
    pg_stat_activity = "pg_stat_activity"
    log = "log"  # a server log (pgpulse logs)
    argument = "argument"  # --query
    file = "file"  # --file
    stdin = "stdin"  # --stdin


@dataclass(frozen=True)
class WorkloadQuery:
    sql: str
    source: Source
    calls: int = 1
    total_ms: float = 0.0
    mean_ms: float = 0.0
    queryid: int | None = None

    def label(self) -> str:
        if self.queryid is not None:
            return f"queryid {self.queryid}"
        return self.source


async def from_pg_stat_statements(
    conn: asyncpg.Connection,
    limit: int,
    min_calls: int = 1,
    queryid: int | None = None,
    warn: Callable[[str], None] = lambda _: None,
    min_total_ms: float = 0.0,
) -> list[WorkloadQuery]:
    installed = await conn.fetchval("SELECT true FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if not installed:
        raise WorkloadError(
            "pg_stat_statements is not enabled in this database: add it to shared_preload_libraries and run "
            "CREATE EXTENSION pg_stat_statements, or give queries with --query, --file or --log"
        )
    rows = await conn.fetch(STATEMENTS_SQL, min_calls, queryid, limit + HIDDEN_MARGIN, min_total_ms)
    visible = [r for r in rows if r["query"] != HIDDEN][:limit]
    hidden = len(rows) - len([r for r in rows if r["query"] != HIDDEN])
    if hidden:
        message = (
            f"pg_stat_statements hides {hidden} statement{'s' if hidden > 1 else ''} of other roles from this "
            "role: GRANT pg_read_all_stats TO it, or give queries with --query, --file or --log"
        )
        if not visible:
            raise WorkloadError(message)
        warn(message)
    rows = visible
    if queryid is not None and not rows:
        raise WorkloadError(f"queryid {queryid} is not in pg_stat_statements for this database")
    return [
        WorkloadQuery(r["query"], Source.pg_stat_statements, r["calls"], r["total_ms"], r["mean_ms"], r["queryid"])
        for r in rows
    ]


def from_logs(paths: list[Path], limit: int, min_calls: int = 1) -> list[WorkloadQuery]:
    for path in paths:
        if not path.is_file():
            raise WorkloadError(f"{path}: no such log file")
    try:
        parsed = read_logs(paths)
    except (OSError, EOFError) as exc:
        raise WorkloadError(f"cannot read log: {exc}") from exc
    stats = sorted(summarize(parsed.entries), key=lambda s: s.total, reverse=True)
    return [WorkloadQuery(s.query, Source.log, s.count, s.total, s.mean) for s in stats if s.count >= min_calls][:limit]


def from_text(texts: list[str], source: Source) -> list[WorkloadQuery]:
    """Split SQL text into statements (PostgreSQL's scanner: semicolons in strings are not boundaries)."""
    return [WorkloadQuery(statement, source) for text in texts for statement in split_statements(text)]


def from_file(path: Path) -> list[WorkloadQuery]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return from_text([text], Source.file)


def from_stdin(stream: TextIO) -> list[WorkloadQuery]:
    """Statements piped in (``cat queries.sql | pgpulse advise --stdin``)."""
    return from_text([stream.read()], Source.stdin)


async def from_pg_stat_activity(
    conn: asyncpg.Connection, seconds: float, interval: float = 0.05, limit: int = 100
) -> list[WorkloadQuery]:
    """Sample the queries running in this database for ``seconds`` (Dexter's ``--pg-stat-activity``): for a
    server without pg_stat_statements. A statement seen in ``n`` samples ran for about ``n × interval``;
    samples of the same shape (libpg_query fingerprint) are counted together, the first text kept."""
    seen: dict[str, WorkloadQuery] = {}
    deadline = time.monotonic() + seconds
    while True:
        for row in await conn.fetch(ACTIVITY_SQL):
            key = fingerprint(row["query"])
            known = seen.get(key)
            calls = known.calls + 1 if known else 1
            seen[key] = WorkloadQuery(row["query"], Source.pg_stat_activity, calls, calls * interval * 1000)
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    return sorted(seen.values(), key=lambda q: -q.total_ms)[:limit]


def filter_tables(
    queries: Iterable[WorkloadQuery], include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[WorkloadQuery]:
    """Dexter's ``--include`` / ``--exclude``: keep queries that read at least one included table (when any is
    given) and none of the excluded ones. Names match ``table`` or ``schema.table``; queries that do not parse are
    kept (the advisor reports why it cannot read them)."""
    from pgpulse.advisor.parse import UnsupportedQuery, analyze

    wanted, unwanted = set(include), set(exclude)
    kept = []
    for query in queries:
        try:
            refs = analyze(query.sql).tables
        except UnsupportedQuery:
            kept.append(query)
            continue
        names = {r.name for r in refs} | {f"{r.schema}.{r.name}" for r in refs if r.schema}
        if names & unwanted or (wanted and not names & wanted):
            continue
        kept.append(query)
    return kept
