"""How ``pgpulse history`` scales: a snapshot of 5,000 statements, 1,000 tables and 3,000 indexes (time, store
growth per snapshot), and a diff over 30 days of hourly history for 5,000 statements (≈ 3.6 M points, goal < 1 s).

The first part is real end to end: a throw-away server, a schema of 1,000 tables with 3 indexes each, 5,000
distinct statements run so pg_stat_statements holds them, then snapshots recorded into a store database, each
after the whole workload ran again (so every statement has a point: the worst case for the store). The second
part writes 30 days of hourly points straight into a store (the shape retention leaves behind) with 50 planted
regressions, then times ``diff`` with a 15-day baseline against the last 15 days. Results go to a fresh temporary
folder (printed), never into the repository.

    python -m pgpulse.bench.history_scale [--tables 1000] [--statements 5000] [--days 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from pgpulse.bench.doctor_scale import build_schema
from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import ephemeral_server
from pgpulse.history.diff import Thresholds, Windows, diff
from pgpulse.history.kinds import STATEMENT
from pgpulse.history.snapshot import read_snapshot
from pgpulse.history.store import migrate, open_store
from pgpulse.sql import quote_ident

SHAPES = (
    "SELECT id FROM t{i} WHERE a = 1",
    "SELECT b FROM t{i} WHERE a = 1 AND b = 2",
    "SELECT count(*) FROM t{i}",
    "SELECT max(b) FROM t{i} WHERE a < 3",
    "SELECT c FROM t{i} ORDER BY id LIMIT 1",
)
SERVER_SETTINGS = {"pg_stat_statements.max": "10000", "pg_stat_statements.track_utility": "off"}


@dataclass
class SnapshotScale:
    tables: int
    indexes: int
    statements_seen: int
    read_s: list[float]
    record_s: list[float]
    median_total_s: float
    first_snapshot_store_bytes: int
    store_growth_bytes_per_snapshot: list[int]
    statement_points_per_snapshot: int


@dataclass
class DiffScale:
    statements: int
    days: int
    points: int
    store_bytes: int
    load_s: float
    diff_runs_s: list[float]
    diff_median_s: float
    regressions_found: int
    regressions_planted: int


async def _workload(url: str, tables: int, statements: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        sql = [SHAPES[k % len(SHAPES)].format(i=(k // len(SHAPES)) % tables) for k in range(statements)]
        for start in range(0, len(sql), 500):  # a multi-statement string: each statement its own entry
            await conn.execute(";\n".join(sql[start : start + 500]))
    finally:
        await conn.close()


async def _schema_bytes(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgpulse_history' AND c.relkind = 'r'"
        )
        return int(value)
    finally:
        await conn.close()


async def snapshot_scale(maintenance: str, tables: int, statements: int, rounds: int) -> SnapshotScale:
    target = await create_database(maintenance, "bench_target")
    store_url = await create_database(maintenance, "bench_store")
    indexes = await build_schema(target, tables)
    await asyncio.to_thread(migrate, store_url)
    await _workload(target, tables, statements)
    reads, records, growth = [], [], []
    store = await open_store(store_url)
    try:
        snap = await read_snapshot(target)
        await store.record("bench", snap)
        first_bytes = await _schema_bytes(store_url)
        seen = len(snap.rows[STATEMENT.kind])
        points = 0
        for _ in range(rounds):
            await _workload(target, tables, statements)
            before = await _schema_bytes(store_url)
            began = time.perf_counter()
            snap = await read_snapshot(target)
            read = time.perf_counter()
            recorded = await store.record("bench", snap)
            done = time.perf_counter()
            reads.append(round(read - began, 3))
            records.append(round(done - read, 3))
            growth.append(await _schema_bytes(store_url) - before)
            points = recorded.points[STATEMENT.kind.value]
    finally:
        await store.close()
    totals = [r + w for r, w in zip(reads, records, strict=True)]
    return SnapshotScale(
        tables, indexes, seen, reads, records, round(statistics.median(totals), 3), first_bytes, growth, points
    )


def _load_sql() -> str:
    """30 days of hourly points for every series: 100-149 calls an hour at 0.5 ms, series 1-50 at 1.5 ms in the
    second half. Running totals are the closed forms of those sums."""
    zeros = [c for c in STATEMENT.counters if c not in ("calls", "total_exec_time", "rows")]
    columns = ", ".join(
        quote_ident(c)
        for c in (
            "series_id",
            "bucket_start",
            "bucket_end",
            "resolution_s",
            "from_zero",
            "calls",
            "total_exec_time",
            "rows",
            *zeros,
            *STATEMENT.cum_columns,
        )
    )
    zero_values = ", ".join("0" for _ in zeros)
    return f"""
INSERT INTO pgpulse_history.statement_point ({columns})
SELECT s.series_id, $2::timestamptz + (h - 1) * interval '1 hour', $2::timestamptz + h * interval '1 hour', 3600, false,
       s.calls, s.calls * (CASE WHEN s.slow AND h > $3 / 2 THEN 1.5 ELSE 0.5 END), s.calls, {zero_values},
       s.calls * h,
       s.calls * (0.5 * h + CASE WHEN s.slow AND h > $3 / 2 THEN (h - $3 / 2) ELSE 0 END),
       s.calls * h
FROM generate_series(1, $3::int) h
CROSS JOIN (SELECT series_id, 100 + queryid % 50 AS calls, queryid <= 50 AS slow
            FROM pgpulse_history.statement_series WHERE target_id = $1) s
ORDER BY h, s.series_id"""


async def diff_scale(maintenance: str, statements: int, days: int, rounds: int) -> DiffScale:
    store_url = await create_database(maintenance, "bench_history")
    await asyncio.to_thread(migrate, store_url)
    hours = days * 24
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours)
    conn = await asyncpg.connect(store_url)
    try:
        began = time.perf_counter()
        target_id = await conn.fetchval(
            "INSERT INTO pgpulse_history.target (name) VALUES ('bench') RETURNING target_id"
        )
        await conn.execute(
            """INSERT INTO pgpulse_history.snapshot (target_id, taken_at, epoch, epoch_reasons, server_version_num,
                 postmaster_start, pgss_available, xact_commit, statements, tables, indexes, settings)
               SELECT $1, $2::timestamptz + h * interval '1 hour', 1, '{}', 180000, $2, true, h, $3, 0, 0, '{}'
               FROM generate_series(0, $4) h""",
            target_id,
            start,
            statements,
            hours,
        )
        await conn.execute(
            """INSERT INTO pgpulse_history.statement_series (target_id, queryid, userid, dbid, toplevel, query,
                 last_snapshot_id, last_raw, running, last_counted_at)
               SELECT $1, g, 10, 5, true, 'SELECT bench_' || g || ' FROM t WHERE id = $1', 0, '', '', $2
               FROM generate_series(1, $3) g""",
            target_id,
            end,
            statements,
        )
        await conn.execute(_load_sql(), target_id, start, hours)
        await conn.execute("VACUUM ANALYZE pgpulse_history.statement_point")
        await conn.execute("VACUUM ANALYZE pgpulse_history.statement_series")
        load_s = time.perf_counter() - began
        points = int(await conn.fetchval("SELECT count(*) FROM pgpulse_history.statement_point"))
        windows = Windows.around(end - timedelta(days=days / 2), end)
        runs, found = [], 0
        for _ in range(rounds + 1):  # the first run warms the cache and is not counted
            t0 = time.perf_counter()
            report = await diff(conn, target_id, "bench", windows, Thresholds())
            runs.append(time.perf_counter() - t0)
            found = sum(1 for f in report.findings if f.kind.name == "slower_query")
    finally:
        await conn.close()
    size = await _schema_bytes(store_url)
    timed = [round(r, 3) for r in runs[1:]]
    return DiffScale(statements, days, points, size, round(load_s, 1), timed, statistics.median(timed), found, 50)


def run(tables: int, statements: int, days: int, rounds: int) -> tuple[SnapshotScale, DiffScale]:
    with ephemeral_server(settings=SERVER_SETTINGS, fast=True) as server:
        maintenance = server.url()

        async def both() -> tuple[SnapshotScale, DiffScale]:
            snap = await snapshot_scale(maintenance, tables, statements, rounds)
            return snap, await diff_scale(maintenance, statements, days, rounds)

        return asyncio.run(both())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    snap, diffed = run(args.tables, args.statements, args.days, args.rounds)
    out = Path(tempfile.mkdtemp(prefix="pgpulse-history-bench-"))
    (out / "history_scale.json").write_text(json.dumps({"snapshot": asdict(snap), "diff": asdict(diffed)}, indent=2))
    growth = statistics.median(snap.store_growth_bytes_per_snapshot) / 1048576
    print(
        f"snapshot of {snap.statements_seen:,} statements / {snap.tables:,} tables / {snap.indexes:,} indexes: "
        f"median {snap.median_total_s:.2f} s (read {statistics.median(snap.read_s):.2f} s, "
        f"record {statistics.median(snap.record_s):.2f} s); store +{growth:.2f} MiB per snapshot "
        f"({snap.statement_points_per_snapshot:,} statement points)"
    )
    print(
        f"diff over {diffed.days} days x {diffed.statements:,} statements ({diffed.points:,} points, "
        f"{diffed.store_bytes / 1048576:,.0f} MiB): median {diffed.diff_median_s * 1000:.0f} ms "
        f"(goal < 1000 ms); {diffed.regressions_found}/{diffed.regressions_planted} planted regressions found"
    )
    print(f"results: {out / 'history_scale.json'}")


if __name__ == "__main__":
    main()
