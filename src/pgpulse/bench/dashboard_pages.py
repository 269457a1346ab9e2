"""How fast the dashboard's pages are at scale: 5,000 statements, 1,000 tables (3,000 indexes) and 30 days of
hourly history for every one of them (≈ 3.6 M statement points, 720 k table points); goal < 300 ms p95 each.

A throw-away server; the target gets the schema and workload of :mod:`pgpulse.bench.history_scale` (so
pg_stat_statements really holds 5,000 entries), one real snapshot is recorded into a store (real series: the
target's queryids and table OIDs), then 30 days of hourly points are written straight into the store behind
it. Each page is served in process through the ASGI interface (server time only, no network), loaded once to
warm up and then 20 times. The Overview's doctor audit is cached for a minute by the app: its first run is
reported on its own. The Requests pages read a full ring (500 requests recorded by the real profiler, from 1 to
200 queries each). Results go to a fresh temporary folder (printed), never into the repository.

    python -m pgpulse.bench.dashboard_pages [--tables 1000] [--statements 5000] [--days 30] [--loads 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from pgpulse.bench.doctor_scale import build_schema
from pgpulse.bench.history_scale import SERVER_SETTINGS, _workload
from pgpulse.dashboard import RequestRing, app
from pgpulse.db.databases import create_database
from pgpulse.db.urls import async_url
from pgpulse.demo.embedded import ephemeral_server
from pgpulse.history.kinds import STATEMENT, TABLE, KindSpec
from pgpulse.history.snapshot import read_snapshot
from pgpulse.history.store import migrate, open_store
from pgpulse.history.targets import default_name
from pgpulse.profiler import instrument, profile
from pgpulse.sql import quote_ident

GOAL_MS = 300.0


@dataclass
class PageTiming:
    page: str
    p50_ms: float
    p95_ms: float
    max_ms: float
    bytes: int


@dataclass
class Result:
    statements: int
    tables: int
    days: int
    statement_points: int
    table_points: int
    loads: int
    doctor_first_run_ms: float
    pages: list[PageTiming]
    load_average: tuple[float, float, float]


def _points_sql(spec: KindSpec, kind: str) -> str:
    """Hourly points for every series of one kind: counters grow steadily, gauges (sizes) grow 0.1 %/hour."""
    counters = ", ".join(quote_ident(c) for c in spec.counters)
    gauges = ", ".join(quote_ident(g) for g in spec.gauges)
    running = ", ".join(quote_ident(c) for c in spec.cum_columns)
    counter_values = ", ".join("10 + s.series_id % 50" for _ in spec.counters)
    running_values = ", ".join("(10 + s.series_id % 50) * h" for _ in spec.cum_columns)
    gauge_values = ", ".join("8192 * (100 + s.series_id % 50) * (1 + 0.001 * h)" for _ in spec.gauges)
    series = "statement_series" if kind == "statement" else "relation_series"
    where = "" if kind == "statement" else f"AND s.kind = '{kind}'"
    columns = ", ".join(
        c for c in ("series_id, bucket_start, bucket_end, resolution_s, from_zero", counters, running, gauges) if c
    )
    values = ", ".join(v for v in (counter_values, running_values, gauge_values) if v)
    return f"""
INSERT INTO pgpulse_history.{spec.point_table} ({columns})
SELECT s.series_id, $2::timestamptz + (h - 1) * interval '1 hour', $2::timestamptz + h * interval '1 hour', 3600,
       false, {values}
FROM generate_series(1, $3::int) h
CROSS JOIN pgpulse_history.{series} s WHERE s.target_id = $1 {where}
ORDER BY h, s.series_id"""


async def _history(target: str, store_url: str, days: int) -> tuple[int, int]:
    await asyncio.to_thread(migrate, store_url)
    store = await open_store(store_url)
    try:
        recorded = await store.record(default_name(target), await read_snapshot(target))
    finally:
        await store.close()
    hours = days * 24
    end = recorded.taken_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours)
    conn = await asyncpg.connect(store_url)
    try:
        target_id = await conn.fetchval(
            "SELECT target_id FROM pgpulse_history.target WHERE name = $1", default_name(target)
        )
        for spec, kind in ((STATEMENT, "statement"), (TABLE, "table")):
            await conn.execute(_points_sql(spec, kind), target_id, start, hours)
        await conn.execute("VACUUM ANALYZE")
        statement_points = int(await conn.fetchval("SELECT count(*) FROM pgpulse_history.statement_point"))
        table_points = int(await conn.fetchval("SELECT count(*) FROM pgpulse_history.table_point"))
    finally:
        await conn.close()
    return statement_points, table_points


RING_SIZE = 500
RING_SHAPES = (1, 3, 5, 12, 20, 35, 52, 80, 120, 200)  # queries per request; each shape recorded once, added 50x


async def _full_ring(target: str) -> RequestRing:
    """A ring of 500 requests recorded by the profiler on a real engine (N+1s included: the same query per id)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(async_url(target))
    instrument(engine)
    ring = RequestRing(size=RING_SIZE)
    try:
        records = []
        async with engine.connect() as conn:
            for count in RING_SHAPES:
                with profile(route=f"/bench/{count}/{{item_id}}") as record:
                    for i in range(count):
                        await conn.execute(text("SELECT relname FROM pg_class WHERE oid = :oid"), {"oid": i})
                record.method = "GET"
                records.append(record)
        for _ in range(RING_SIZE // len(records)):
            for record in records:
                ring.add(record)
    finally:
        await engine.dispose()
    return ring


async def measure(maintenance: str, tables: int, statements: int, days: int, loads: int) -> Result:
    target = await create_database(maintenance, "bench_dash_target")
    store_url = await create_database(maintenance, "bench_dash_store")
    await build_schema(target, tables)
    await _workload(target, tables, statements)
    statement_points, table_points = await _history(target, store_url, days)
    ring = await _full_ring(target)
    asgi = app(target, store_url, production=False, requests_ring=ring)
    timings: list[PageTiming] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bench") as client:
        began = time.perf_counter()
        first = await client.get("/")
        doctor_ms = (time.perf_counter() - began) * 1000
        first.raise_for_status()
        listing = (await client.get("/queries")).text
        top = re.search(r'/queries/(-?\d+)"', listing)
        biggest = max(ring.items(), key=lambda r: r.query_count).id
        pages = [
            "/",
            "/queries",
            f"/queries/{top[1] if top else 0}",
            "/indexes",
            "/tables",
            "/connections",
            "/requests",
            f"/requests/{biggest}",
        ]
        for page in pages:
            (await client.get(page)).raise_for_status()  # warm-up: catalog caches, the pools
            runs, size = [], 0
            for _ in range(loads):
                t0 = time.perf_counter()
                response = await client.get(page)
                runs.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                size = len(response.content)
            runs.sort()
            p95 = runs[min(len(runs) - 1, round(0.95 * len(runs)) - 1)]
            name = "/queries/{top}" if page.startswith("/queries/") else page
            name = "/requests/{200q}" if page.startswith("/requests/") else name
            timings.append(PageTiming(name, round(statistics.median(runs), 1), round(p95, 1), round(runs[-1], 1), size))
    return Result(
        statements, tables, days, statement_points, table_points, loads, round(doctor_ms, 1), timings, os.getloadavg()
    )


def run(tables: int, statements: int, days: int, loads: int) -> Result:
    with ephemeral_server(settings=SERVER_SETTINGS, fast=True) as server:
        return asyncio.run(measure(server.url(), tables, statements, days, loads))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    started = datetime.now(UTC)
    result = run(args.tables, args.statements, args.days, args.loads)
    out = Path(tempfile.mkdtemp(prefix="pgpulse-dashboard-bench-"))
    (out / "dashboard_pages.json").write_text(json.dumps({"started": started.isoformat(), **asdict(result)}, indent=2))
    print(
        f"{result.statements:,} statements, {result.tables:,} tables, {result.days} days of hourly history "
        f"({result.statement_points:,} statement + {result.table_points:,} table points); "
        f"{result.loads} loads per page; load average {' '.join(f'{x:.2f}' for x in result.load_average)}"
    )
    print(f"overview's first load (runs the doctor, then cached for a minute): {result.doctor_first_run_ms:.0f} ms")
    for t in result.pages:
        verdict = "ok" if t.p95_ms < GOAL_MS else f"over the {GOAL_MS:.0f} ms goal"
        print(f"  {t.page:<16} p50 {t.p50_ms:7.1f} ms  p95 {t.p95_ms:7.1f} ms  max {t.max_ms:7.1f} ms  {verdict}")
    print(f"results: {out / 'dashboard_pages.json'}")


if __name__ == "__main__":
    main()
