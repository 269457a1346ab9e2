"""Read one snapshot of a target's statistics, read-only: pg_stat_statements, tables, indexes, the database.

The session is opened with ``default_transaction_read_only = on`` plus statement, lock and idle timeouts, and
everything is read inside one read-only REPEATABLE READ transaction, so the counters of one snapshot belong to
one instant (PostgreSQL 15+ caches the statistics snapshot per transaction). Our own statements are tagged
with :data:`~pgpulse.history.kinds.TAG` and filtered out of what we read, and when the role may, the session
turns pg_stat_statements tracking off so reading the statistics does not add to them.

pg_stat_statements differs between versions: ``toplevel`` and ``pg_stat_statements_info`` (14+), per-entry
``stats_since`` (17+), ``blk_read_time`` split into shared/local (17+), ``total_time`` before 13. The SELECT is
built from the columns the installed view actually has; a counter the server does not keep reads as 0.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from pgpulse.db.connect import open_session
from pgpulse.errors import UserError
from pgpulse.errors import one_line as _one_line
from pgpulse.history.kinds import DATABASE, INDEX, SCHEMA, STATEMENT, TABLE, TAG, Kind
from pgpulse.sql import quote_ident, quote_qualified

SESSION_SETTINGS = {"default_transaction_read_only": "on", "application_name": "pgpulse-history"}
# Sent as SET after connecting (PgBouncer refuses most start-up parameters).
SESSION_LIMITS = (
    f"{TAG} SET statement_timeout = '30s'",
    f"{TAG} SET lock_timeout = '2s'",
    f"{TAG} SET idle_in_transaction_session_timeout = '60s'",
)

# The settings a regression is most often explained by (a changed work_mem, a planner cost, the JIT…).
SETTINGS_THAT_MATTER = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "random_page_cost",
    "seq_page_cost",
    "effective_io_concurrency",
    "default_statistics_target",
    "max_connections",
    "max_parallel_workers_per_gather",
    "jit",
    "checkpoint_timeout",
    "max_wal_size",
    "autovacuum",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor",
    "track_io_timing",
    "pg_stat_statements.max",
    "pg_stat_statements.track",
    "pg_stat_statements.save",
)


class SnapshotError(UserError):
    """The target could not be read; ``str()`` is one line without the password."""


@dataclass(frozen=True)
class Row:
    """One series as read: its identity, its names, its counters and gauges in :mod:`kinds` order."""

    key: tuple[Any, ...]
    labels: tuple[str | None, ...]
    counters: tuple[float, ...]
    gauges: tuple[float, ...] = ()
    since: datetime | None = None  # pg_stat_statements 17+: when this entry started counting


@dataclass
class Snapshot:
    taken_at: datetime
    server_version_num: int
    postmaster_start: datetime
    database: str
    db_stats_reset: datetime | None
    pgss_stats_reset: datetime | None  # pg_stat_statements_info (14+); None when unknown
    pgss_dealloc: int | None
    pgss_available: bool
    settings: dict[str, str]
    rows: dict[Kind, list[Row]] = field(default_factory=dict)


META_SQL = f"""{TAG}
SELECT now() AS taken_at,
       current_setting('server_version_num')::int AS version_num,
       pg_postmaster_start_time() AS postmaster_start,
       current_database() AS database"""

SETTINGS_SQL = f"""{TAG}
SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name"""

DATABASE_SQL = f"""{TAG}
SELECT d.datid, d.datname, d.stats_reset,
       d.xact_commit, d.xact_rollback, d.blks_read, d.blks_hit, d.tup_returned, d.tup_fetched,
       d.tup_inserted, d.tup_updated, d.tup_deleted, d.conflicts, d.temp_files, d.temp_bytes, d.deadlocks,
       d.numbackends, pg_database_size(d.datid) AS size_bytes
FROM pg_stat_database d
WHERE d.datname = current_database()"""

# The store's own schema is left out: when the store lives in the target, its tables are not the user's.
TABLES_SQL = f"""{TAG}
SELECT t.relid, t.schemaname, t.relname,
       t.seq_scan, t.seq_tup_read, coalesce(t.idx_scan, 0) AS idx_scan, coalesce(t.idx_tup_fetch, 0) AS idx_tup_fetch,
       t.n_tup_ins, t.n_tup_upd, t.n_tup_del, t.n_tup_hot_upd,
       t.vacuum_count, t.autovacuum_count, t.analyze_count, t.autoanalyze_count,
       t.n_live_tup, t.n_dead_tup, coalesce(pg_table_size(t.relid), 0) AS total_bytes
FROM pg_stat_user_tables t
WHERE t.schemaname <> $1 AND t.schemaname NOT LIKE 'pg\\_temp\\_%'"""

INDEXES_SQL = f"""{TAG}
SELECT i.indexrelid, i.relid, i.schemaname, i.relname, i.indexrelname,
       i.idx_scan, i.idx_tup_read, i.idx_tup_fetch,
       coalesce(pg_relation_size(i.indexrelid), 0) AS size_bytes
FROM pg_stat_user_indexes i
WHERE i.schemaname <> $1 AND i.schemaname NOT LIKE 'pg\\_temp\\_%'"""

PGSS_SCHEMA_SQL = f"""{TAG}
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'"""

COLUMNS_SQL = f"""{TAG}
SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped"""


async def connect_read_only(url: str, timeout: float = 10.0) -> asyncpg.Connection:
    """A read-only session with our timeouts; connection failures become one-line :class:`SnapshotError`."""
    conn = await open_session(url, timeout=timeout, server_settings=SESSION_SETTINGS, error=SnapshotError)
    try:
        for statement in SESSION_LIMITS:
            await conn.execute(statement)
    except BaseException:
        await conn.close()
        raise
    return conn


def _statement_sql(schema: str, columns: set[str]) -> str:
    """The SELECT over pg_stat_statements for the columns this server's version has."""

    def col(name: str) -> str:
        return f"s.{quote_ident(name)}" if name in columns else "0"

    def first(*names: str) -> str:
        return next((f"s.{quote_ident(n)}" for n in names if n in columns), "0")

    total = first("total_exec_time", "total_time")
    mean = first("mean_exec_time", "mean_time")
    stddev = first("stddev_exec_time", "stddev_time")
    if "shared_blk_read_time" in columns:  # 17+: block I/O time split into shared and local
        read_time = "s.shared_blk_read_time + s.local_blk_read_time"
        write_time = "s.shared_blk_write_time + s.local_blk_write_time"
    else:
        read_time, write_time = col("blk_read_time"), col("blk_write_time")
    expressions = {
        "calls": "s.calls",
        "total_exec_time": total,
        "exec_time_sumsq": f"s.calls * ({stddev} * {stddev} + {mean} * {mean})",
        "blk_read_time": read_time,
        "blk_write_time": write_time,
    }
    counters = ",\n       ".join(
        f"coalesce(({expressions.get(c, col(c))})::float8, 0) AS {quote_ident(c)}" for c in STATEMENT.counters
    )
    toplevel = "s.toplevel" if "toplevel" in columns else "true"
    since = "s.stats_since" if "stats_since" in columns else "NULL::timestamptz"
    view = quote_qualified(schema, "pg_stat_statements")
    # Only this database's statements (pg_stat_statements is server-wide; two targets on one server must not
    # mix), only entries we may see (others' show a NULL queryid), never our own tagged statements.
    return f"""{TAG}
SELECT s.queryid, s.userid, s.dbid, {toplevel} AS toplevel, {since} AS since, s.query,
       {counters}
FROM {view} s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
  AND s.query NOT LIKE '%pgpulse:history%'
  AND s.query NOT LIKE '%pgpulse\\_history%'"""


@dataclass(frozen=True)
class _Pgss:
    """Where pg_stat_statements lives on this server and which columns its version has."""

    schema: str
    columns: frozenset[str]
    has_info: bool


async def _find_pgss(conn: asyncpg.Connection) -> _Pgss | None:
    schema = await conn.fetchval(PGSS_SCHEMA_SQL)
    if schema is None:
        return None
    view = quote_qualified(schema, "pg_stat_statements")
    columns = frozenset(r["attname"] for r in await conn.fetch(COLUMNS_SQL, view))
    info = quote_qualified(schema, "pg_stat_statements_info")
    has_info = bool(await conn.fetchval(f"{TAG} SELECT to_regclass($1) IS NOT NULL", info))
    return _Pgss(schema, columns, has_info)


async def _statements(conn: asyncpg.Connection, pgss: _Pgss, snap: Snapshot) -> list[Row]:
    """Read inside the caller's transaction, under a savepoint: a library that is installed but not preloaded
    raises, and that must not abort the rest of the snapshot."""
    try:
        async with conn.transaction():
            if pgss.has_info:
                info = quote_qualified(pgss.schema, "pg_stat_statements_info")
                row = await conn.fetchrow(f"{TAG} SELECT dealloc, stats_reset FROM {info}")
                snap.pgss_dealloc, snap.pgss_stats_reset = int(row["dealloc"]), row["stats_reset"]
            records = await conn.fetch(_statement_sql(pgss.schema, set(pgss.columns)))
    except asyncpg.ObjectNotInPrerequisiteStateError:  # installed but not in shared_preload_libraries
        return []
    snap.pgss_available = True
    n = len(STATEMENT.counters)
    return [
        Row(
            key=(r["queryid"], r["userid"], r["dbid"], r["toplevel"]),
            labels=(r["query"],),
            counters=tuple(r.values())[6 : 6 + n],  # float8, never NULL (coalesced in the SELECT)
            since=r["since"],
        )
        for r in records
    ]


def _floats(record: asyncpg.Record, names: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(float(record[n] or 0) for n in names)


async def read_snapshot(url: str) -> Snapshot:
    """One snapshot of ``url``'s statistics. Raises :class:`SnapshotError` (one line) when it cannot."""
    conn = await connect_read_only(url)
    try:
        # Superusers may keep our reading out of pg_stat_statements altogether; others are filtered by TAG.
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(f"{TAG} SET pg_stat_statements.track = 'none'")
        pgss = await _find_pgss(conn)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            meta = await conn.fetchrow(META_SQL)
            settings = {
                r["name"]: r["setting"] + (r["unit"] or "")
                for r in await conn.fetch(SETTINGS_SQL, list(SETTINGS_THAT_MATTER))
            }
            db = await conn.fetchrow(DATABASE_SQL)
            tables = await conn.fetch(TABLES_SQL, SCHEMA)
            indexes = await conn.fetch(INDEXES_SQL, SCHEMA)
            snap = Snapshot(
                taken_at=meta["taken_at"],
                server_version_num=meta["version_num"],
                postmaster_start=meta["postmaster_start"],
                database=meta["database"],
                db_stats_reset=db["stats_reset"] if db else None,
                pgss_stats_reset=None,
                pgss_dealloc=None,
                pgss_available=False,
                settings=settings,
            )
            snap.rows[Kind.database] = (
                [
                    Row(
                        (db["datid"],),
                        (None, db["datname"], None),
                        _floats(db, DATABASE.counters),
                        _floats(db, DATABASE.gauges),
                    )
                ]
                if db
                else []
            )
            # pg_total_relation_size() would measure every index a second time: add the sizes read below.
            index_bytes: dict[int, float] = {}
            for r in indexes:
                index_bytes[r["relid"]] = index_bytes.get(r["relid"], 0.0) + float(r["size_bytes"])
            total = TABLE.gauges.index("total_bytes")
            snap.rows[Kind.table] = []
            for r in tables:
                gauges = list(_floats(r, TABLE.gauges))
                gauges[total] += index_bytes.get(r["relid"], 0.0)
                snap.rows[Kind.table].append(
                    Row((r["relid"],), (r["schemaname"], r["relname"], None), _floats(r, TABLE.counters), tuple(gauges))
                )
            snap.rows[Kind.index_] = [
                Row(
                    (r["indexrelid"],),
                    (r["schemaname"], r["relname"], r["indexrelname"]),
                    _floats(r, INDEX.counters),
                    _floats(r, INDEX.gauges),
                )
                for r in indexes
            ]
            snap.rows[Kind.statement] = await _statements(conn, pgss, snap) if pgss else []
    except asyncpg.PostgresError as exc:
        raise SnapshotError(f"reading the statistics failed: {_one_line(exc)}") from exc
    finally:
        await conn.close()
    return snap
