"""The history store: a PostgreSQL database with pgpulse's own schema, written only by this module.

One transaction per snapshot: the target's row is locked (two collectors of one target serialise), the previous
snapshot's markers decide the epoch, :mod:`deltas` turns the counters into points, and everything is written
with COPY (a 5,000-statement snapshot is a handful of round trips, not 5,000 INSERTs). Every statement sent is
tagged with :data:`~pgpulse.history.kinds.TAG` so a snapshot of the store's own database leaves them out.

The schema is created and migrated by the Alembic migrations shipped in ``pgpulse/history/migrations``; opening a
store migrates it first when its version is not the one this pgpulse knows (``migrate=False`` to refuse instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from pgpulse.db.urls import libpq_url
from pgpulse.errors import UserError
from pgpulse.errors import one_line as _one_line
from pgpulse.history.deltas import Change, Epochs, Markers, Previous, changes, epochs
from pgpulse.history.kinds import SCHEMA, SPECS, TAG, Kind, KindSpec
from pgpulse.history.snapshot import Snapshot

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0003"  # tests check this is Alembic's head
STORE_SETTINGS = {"application_name": "pgpulse-history"}
STORE_LIMITS = (f"{TAG} SET statement_timeout = '10min'", f"{TAG} SET lock_timeout = '30s'")
KIND_ORDER = (Kind.database, Kind.table, Kind.index_, Kind.statement)


class StoreError(UserError):
    """The store cannot be used as asked; ``str()`` is one line that says what to do."""


def migrate(url: str, revision: str = "head") -> None:
    """Create or upgrade the store's schema (Alembic runs its own event loop: call from sync code or a thread)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = libpq_url(url)  # an attribute: ini interpolation would mangle a '%'
    command.upgrade(cfg, revision)


VERSION_SQL = f"""{TAG}
SELECT version_num FROM pgpulse_history.alembic_version"""

UPSERT_TARGET_SQL = f"""{TAG}
INSERT INTO pgpulse_history.target (name) VALUES ($1)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING target_id"""

LOCK_TARGET_SQL = f"""{TAG}
SELECT target_id FROM pgpulse_history.target WHERE target_id = $1 FOR UPDATE"""

TARGET_ID_SQL = f"""{TAG}
SELECT target_id FROM pgpulse_history.target WHERE name = $1"""

TARGETS_SQL = f"""{TAG}
SELECT t.name, count(s.snapshot_id) AS snapshots, min(s.taken_at) AS first, max(s.taken_at) AS last
FROM pgpulse_history.target t LEFT JOIN pgpulse_history.snapshot s USING (target_id)
GROUP BY t.name ORDER BY t.name"""

LAST_SNAPSHOT_SQL = f"""{TAG}
SELECT snapshot_id, taken_at, epoch, postmaster_start, db_stats_reset, pgss_stats_reset, xact_commit, pgss_available
FROM pgpulse_history.snapshot WHERE target_id = $1
ORDER BY taken_at DESC LIMIT 1"""

INSERT_SNAPSHOT_SQL = f"""{TAG}
INSERT INTO pgpulse_history.snapshot
  (target_id, taken_at, epoch, epoch_reasons, server_version_num, postmaster_start, db_stats_reset,
   pgss_stats_reset, pgss_dealloc, pgss_available, xact_commit, statements, tables, indexes, settings)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb)
RETURNING snapshot_id"""

STATEMENT_SERIES_SQL = f"""{TAG}
SELECT series_id, queryid, userid, dbid, toplevel, present, last_raw, running, since
FROM pgpulse_history.statement_series WHERE target_id = $1"""

RELATION_SERIES_SQL = f"""{TAG}
SELECT series_id, relid, present, last_raw, running, since, schemaname, relname, indexname
FROM pgpulse_history.relation_series WHERE target_id = $1 AND kind = $2"""

NEW_IDS_SQL = f"""{TAG}
SELECT nextval('pgpulse_history.series_id_seq') FROM generate_series(1, $1)"""

UPDATE_TEMP_SQL = f"""{TAG}
CREATE TEMP TABLE IF NOT EXISTS pgpulse_series_update (
  series_id bigint, last_raw bytea, running bytea, since timestamptz, last_counted_at timestamptz,
  schemaname text, relname text, indexname text
) ON COMMIT DELETE ROWS"""

UPDATE_STATEMENT_SERIES_SQL = f"""{TAG}
UPDATE pgpulse_history.statement_series s
SET last_snapshot_id = $1, present = true, last_raw = u.last_raw, running = u.running, since = u.since,
    last_counted_at = coalesce(u.last_counted_at, s.last_counted_at)
FROM pgpulse_series_update u WHERE s.series_id = u.series_id"""

# Relations are renamed in place (same OID): the names follow.
UPDATE_RELATION_SERIES_SQL = f"""{TAG}
UPDATE pgpulse_history.relation_series s
SET last_snapshot_id = $1, present = true, last_raw = u.last_raw, running = u.running, since = u.since,
    last_counted_at = coalesce(u.last_counted_at, s.last_counted_at),
    schemaname = u.schemaname, relname = u.relname, indexname = u.indexname
FROM pgpulse_series_update u WHERE s.series_id = u.series_id"""

# Series that were in the previous snapshot and are not in this one: their next appearance counts from zero.
ABSENT_STATEMENTS_SQL = f"""{TAG}
UPDATE pgpulse_history.statement_series SET present = false WHERE series_id = ANY($1::bigint[])"""

ABSENT_RELATIONS_SQL = f"""{TAG}
UPDATE pgpulse_history.relation_series SET present = false WHERE series_id = ANY($1::bigint[])"""

MARK_SQL = f"""{TAG}
INSERT INTO pgpulse_history.mark (target_id, name, at) VALUES ($1, $2, $3)
ON CONFLICT (target_id, name) DO UPDATE SET at = excluded.at"""

GET_MARK_SQL = f"""{TAG}
SELECT at FROM pgpulse_history.mark WHERE target_id = $1 AND name = $2"""


@dataclass
class Recorded:
    """What one snapshot added to the store."""

    target: str
    snapshot_id: int
    taken_at: datetime
    epoch: int
    epoch_reasons: tuple[str, ...]
    first: bool  # the target's first snapshot: origins recorded, no deltas yet
    points: dict[str, int] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)


def markers_of(snap: Snapshot) -> Markers:
    db = snap.rows.get(Kind.database) or []
    xact = db[0].counters[SPECS[Kind.database].counters.index("xact_commit")] if db else 0.0
    return Markers(snap.postmaster_start, snap.db_stats_reset, snap.pgss_stats_reset, xact)


def _pack(values: tuple[float, ...]) -> bytes:
    """A series' counters as little-endian float64s: internal state, COPYed without float8[]'s per-element encoding."""
    return struct.pack(f"<{len(values)}d", *values)


def _unpack(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(blob) // 8}d", blob)


def _moved(change: Change, statement: bool) -> bool:
    previous = change.previous
    assert previous is not None
    return (
        not previous.present
        or change.row.counters != previous.raw
        or change.row.since != previous.since
        or change.running != previous.running
        or (not statement and change.row.labels != previous.labels)
    )


class Store:
    """An open connection to a migrated store. Use :func:`open_store`; close with :meth:`close`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- targets and marks -----------------------------------------------------------------------------

    async def target_id(self, name: str) -> int | None:
        value = await self.conn.fetchval(TARGET_ID_SQL, name)
        return int(value) if value is not None else None

    async def require_target(self, name: str | None) -> tuple[int, str]:
        """The target called ``name``, or the only one when ``name`` is None; :class:`StoreError` otherwise."""
        rows = await self.conn.fetch(TARGETS_SQL)
        names = [r["name"] for r in rows]
        if name is None:
            if len(names) == 1:
                name = names[0]
            elif not names:
                raise StoreError("the store has no snapshots yet: run `pgpulse history snapshot URL --store …` first")
            else:
                raise StoreError(f"the store holds several targets ({', '.join(names)}): pick one with --target NAME")
        target_id = await self.target_id(name)
        if target_id is None:
            known = ", ".join(names) or "none"
            raise StoreError(f"no target named {name!r} in the store (known: {known})")
        return target_id, name

    async def targets(self) -> list[asyncpg.Record]:
        return list(await self.conn.fetch(TARGETS_SQL))

    async def set_mark(self, target: str | None, name: str, at: datetime | None = None) -> datetime:
        """Name a moment (default: the target's last snapshot, else now) for ``diff --baseline NAME``."""
        target_id, _ = await self.require_target(target)
        if at is None:
            at = await self.conn.fetchval(
                f"{TAG} SELECT coalesce(max(taken_at), now()) FROM pgpulse_history.snapshot WHERE target_id = $1",
                target_id,
            )
        await self.conn.execute(MARK_SQL, target_id, name, at)
        assert at is not None
        return at

    async def mark_time(self, target_id: int, name: str) -> datetime:
        at = await self.conn.fetchval(GET_MARK_SQL, target_id, name)
        if at is None:
            raise StoreError(f"no mark named {name!r}: set one with `pgpulse history mark {name}`")
        return at  # type: ignore[no-any-return]

    # -- recording a snapshot ------------------------------------------------------------------------------

    async def record(self, target: str, snap: Snapshot) -> Recorded:
        """Store one snapshot of ``target``: its markers, and per series the new state and the interval's point."""
        async with self.conn.transaction():
            target_id = int(await self.conn.fetchval(UPSERT_TARGET_SQL, target))
            await self.conn.execute(LOCK_TARGET_SQL, target_id)
            last = await self.conn.fetchrow(LAST_SNAPSHOT_SQL, target_id)
            if last is not None and snap.taken_at <= last["taken_at"]:
                raise StoreError(
                    f"target {target!r} already has a snapshot at or after {snap.taken_at.isoformat()}: "
                    "is another target using the same name?"
                )
            current = markers_of(snap)
            epoch: Epochs | None = None
            number = 1
            if last is not None:
                previous = Markers(
                    last["postmaster_start"], last["db_stats_reset"], last["pgss_stats_reset"], last["xact_commit"]
                )
                epoch = epochs(previous, current)
                number = int(last["epoch"]) + (1 if epoch.changed else 0)
            reasons = tuple(str(r) for r in epoch.reasons) if epoch else ()
            snapshot_id = int(
                await self.conn.fetchval(
                    INSERT_SNAPSHOT_SQL,
                    target_id,
                    snap.taken_at,
                    number,
                    list(reasons),
                    snap.server_version_num,
                    snap.postmaster_start,
                    snap.db_stats_reset,
                    snap.pgss_stats_reset,
                    snap.pgss_dealloc,
                    snap.pgss_available,
                    current.xact_commit,
                    len(snap.rows.get(Kind.statement, [])),
                    len(snap.rows.get(Kind.table, [])),
                    len(snap.rows.get(Kind.index_, [])),
                    json.dumps(snap.settings),
                )
            )
            recorded = Recorded(target, snapshot_id, snap.taken_at, number, reasons, first=last is None)
            await self.conn.execute(UPDATE_TEMP_SQL)
            previous_id = int(last["snapshot_id"]) if last is not None else None
            interval_start = last["taken_at"] if last is not None else None
            for kind in KIND_ORDER:
                if kind is Kind.statement and not snap.pgss_available:
                    # Not readable this time (not installed, not preloaded): leave the statement series as they
                    # were, rather than mark them all absent and count them from zero when it is back.
                    recorded.series[kind.value] = recorded.points[kind.value] = 0
                    continue
                spec = SPECS[kind]
                known = await self._series(kind, target_id)
                origin = previous_id
                if kind is Kind.statement and last is not None and not last["pgss_available"]:
                    origin = None  # pg_stat_statements is back: like a first snapshot, record origins only
                result = changes(spec, snap.rows.get(kind, []), known, origin, epoch)
                recorded.series[kind.value] = len(result)
                recorded.points[kind.value] = await self._write(
                    spec, target_id, snapshot_id, interval_start, snap.taken_at, result
                )
                await self._mark_absent(spec, known, result)
        return recorded

    async def _series(self, kind: Kind, target_id: int) -> dict[tuple[Any, ...], Previous]:
        if kind is Kind.statement:
            rows = await self.conn.fetch(STATEMENT_SERIES_SQL, target_id)
            return {
                (r["queryid"], r["userid"], r["dbid"], r["toplevel"]): Previous(
                    r["series_id"], r["present"], _unpack(r["last_raw"]), _unpack(r["running"]), r["since"]
                )
                for r in rows
            }
        rows = await self.conn.fetch(RELATION_SERIES_SQL, target_id, kind.value)
        return {
            (r["relid"],): Previous(
                r["series_id"],
                r["present"],
                _unpack(r["last_raw"]),
                _unpack(r["running"]),
                r["since"],
                (r["schemaname"], r["relname"], r["indexname"]),
            )
            for r in rows
        }

    async def _mark_absent(self, spec: KindSpec, known: dict[tuple[Any, ...], Previous], result: list[Change]) -> None:
        seen = {c.row.key for c in result}
        gone = [p.series_id for key, p in known.items() if p.present and key not in seen]
        if gone:
            sql = ABSENT_STATEMENTS_SQL if spec.kind is Kind.statement else ABSENT_RELATIONS_SQL
            await self.conn.execute(sql, gone)

    async def _write(
        self,
        spec: KindSpec,
        target_id: int,
        snapshot_id: int,
        interval_start: datetime | None,
        taken_at: datetime,
        result: list[Change],
    ) -> int:
        """New series by COPY, known ones updated from a COPY'd temp table, the interval's points by COPY."""
        new = [c for c in result if c.previous is None]
        ids = [int(r[0]) for r in await self.conn.fetch(NEW_IDS_SQL, len(new))] if new else []
        series_id: dict[tuple[Any, ...], int] = {c.row.key: i for c, i in zip(new, ids, strict=True)}
        for c in result:
            if c.previous is not None:
                series_id[c.row.key] = c.previous.series_id
        statement = spec.kind is Kind.statement

        def counted_at(c: Change) -> datetime | None:
            return taken_at if c.counted else None

        if new:
            if statement:
                records: list[tuple[Any, ...]] = [
                    (
                        series_id[c.row.key],
                        target_id,
                        *c.row.key,
                        c.row.labels[0] or "",
                        snapshot_id,
                        _pack(c.row.counters),
                        _pack(c.running),
                        c.row.since,
                        counted_at(c),
                    )
                    for c in new
                ]
                columns = [
                    "series_id",
                    "target_id",
                    "queryid",
                    "userid",
                    "dbid",
                    "toplevel",
                    "query",
                    "last_snapshot_id",
                    "last_raw",
                    "running",
                    "since",
                    "last_counted_at",
                ]
                await self.conn.copy_records_to_table(
                    "statement_series", records=records, columns=columns, schema_name=SCHEMA
                )
            else:
                records = [
                    (
                        series_id[c.row.key],
                        target_id,
                        spec.kind.value,
                        c.row.key[0],
                        *c.row.labels,
                        snapshot_id,
                        _pack(c.row.counters),
                        _pack(c.running),
                        c.row.since,
                        counted_at(c),
                    )
                    for c in new
                ]
                columns = [
                    "series_id",
                    "target_id",
                    "kind",
                    "relid",
                    "schemaname",
                    "relname",
                    "indexname",
                    "last_snapshot_id",
                    "last_raw",
                    "running",
                    "since",
                    "last_counted_at",
                ]
                await self.conn.copy_records_to_table(
                    "relation_series", records=records, columns=columns, schema_name=SCHEMA
                )
        # A series whose counters, origin and names did not move keeps its row as is: most of a quiet target.
        known = [c for c in result if c.previous is not None and _moved(c, statement)]
        if known:
            updates = [
                (
                    c.previous.series_id,
                    _pack(c.row.counters),
                    _pack(c.running),
                    c.row.since,
                    counted_at(c),
                    *(c.row.labels if not statement else (None, None, None)),
                )
                for c in known
                if c.previous is not None
            ]
            await self.conn.copy_records_to_table("pgpulse_series_update", records=updates)
            sql = UPDATE_STATEMENT_SERIES_SQL if statement else UPDATE_RELATION_SERIES_SQL
            await self.conn.execute(sql, snapshot_id)
            await self.conn.execute(f"{TAG} TRUNCATE pgpulse_series_update")
        points = [c for c in result if c.deltas is not None]
        if points and interval_start is not None:
            records = [
                (
                    series_id[c.row.key],
                    interval_start,
                    taken_at,
                    0,
                    c.from_zero,
                    *(c.deltas or ()),
                    *c.running,
                    *c.row.gauges,
                )
                for c in points
            ]
            columns = [
                "series_id",
                "bucket_start",
                "bucket_end",
                "resolution_s",
                "from_zero",
                *spec.counters,
                *spec.cum_columns,
                *spec.gauges,
            ]
            await self.conn.copy_records_to_table(
                spec.point_table, records=records, columns=columns, schema_name=SCHEMA
            )
        return len(points)


async def _connect(url: str) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(libpq_url(url), timeout=10, server_settings=STORE_SETTINGS)
    except asyncpg.InvalidPasswordError as exc:
        raise StoreError(f"store: authentication failed: {_one_line(exc)}") from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise StoreError(f"store: no such database (create it first): {_one_line(exc)}") from exc
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
        raise StoreError(f"store: cannot connect: {_one_line(exc)}") from exc
    for statement in STORE_LIMITS:
        await conn.execute(statement)
    # Writing the store should not show up in the store's own pg_stat_statements (superusers only may say so;
    # for others the TAG filter of the snapshot reader does it).
    with contextlib.suppress(asyncpg.PostgresError):
        await conn.execute(f"{TAG} SET pg_stat_statements.track = 'none'")
    return conn


async def schema_version(conn: asyncpg.Connection) -> str | None:
    try:
        async with conn.transaction():
            value = await conn.fetchval(VERSION_SQL)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return None
    return str(value) if value is not None else None


async def open_store(url: str, *, auto_migrate: bool = True) -> Store:
    """Connect to the store, migrating it first when it is new or older than this pgpulse."""
    conn = await _connect(url)
    try:
        version = await schema_version(conn)
        if version != HEAD_REVISION:
            if not auto_migrate:
                raise StoreError(
                    f"the store's schema is at {version or 'nothing'}, not {HEAD_REVISION}: "
                    "run `pgpulse history migrate --store URL`"
                )
            try:
                await asyncio.to_thread(migrate, url)
            except Exception as exc:
                raise StoreError(f"store: migrating the schema failed: {_one_line(exc)}") from exc
    except BaseException:
        await conn.close()
        raise
    return Store(conn)
