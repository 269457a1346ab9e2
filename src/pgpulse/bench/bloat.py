"""Pair 5 — bloat and statistics: what autovacuum (or a VACUUM/ANALYZE after a bulk job) buys.

Part one updates every row of a table several times with autovacuum off: each UPDATE leaves a dead
version behind, the table grows and a sequential scan reads the dead rows too. VACUUM makes the space
reusable (the file stays as large); VACUUM FULL rewrites the table to its live size.

Part two bulk-loads rows after the last ANALYZE: the planner still believes the old distribution, picks
a plan for a handful of rows (a nested loop) and gets a million. ANALYZE fixes the estimate and the plan.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import asyncpg

from pgpulse.bench.context import BenchContext
from pgpulse.bench.stats import PairResult, Round, ratio, summarize

UPDATE_PASSES = 4
JOINS = ("Nested Loop", "Hash Join", "Merge Join")
SCAN_SQL = "SELECT count(*) FROM bench_bloat WHERE pad <> ''"
JOIN_SQL = (
    "SELECT count(*), sum(length(a.name)) FROM bench_events e JOIN bench_accounts a ON a.id = e.account_id "
    "WHERE e.kind = 1"
)


async def _scan_round(conn: asyncpg.Connection, reps: int) -> Round:
    latencies = []
    began = time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        await conn.fetchval(SCAN_SQL)
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return Round(latencies, time.perf_counter() - began)


async def _state(conn: asyncpg.Connection, pair: PairResult, name: str, rounds: int, reps: int) -> None:
    await conn.fetchval(SCAN_SQL)  # warm the cache
    variant = summarize("bloat", name, [await _scan_round(conn, reps) for _ in range(rounds)], unit="scans/s")
    await conn.execute("SELECT pg_stat_force_next_flush()")
    row = await conn.fetchrow(
        "SELECT pg_relation_size('bench_bloat') AS heap, pg_total_relation_size('bench_bloat') AS total, "
        "(SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'bench_bloat') AS dead"
    )
    plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {SCAN_SQL}"))[0]["Plan"]
    variant.extra.update(
        heap_bytes=int(row["heap"]),
        total_bytes=int(row["total"]),
        dead_tuples=int(row["dead"] or 0),
        # Pages the scan touches: the same on a busy or an idle machine, unlike its time.
        scan_pages=int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0)),
    )
    pair.variants.append(variant)


def _plan(plan_json: str) -> dict[str, Any]:
    top = json.loads(plan_json)[0]
    found: dict[str, Any] = {}

    def walk(node: dict[str, Any]) -> None:
        kind = str(node["Node Type"])
        if node.get("Relation Name") == "bench_events" and "estimated_rows" not in found:
            found.update(estimated_rows=node["Plan Rows"], actual_rows=node["Actual Rows"], scan=kind)
        if kind in JOINS:
            found.setdefault("join", kind)
        for child in node.get("Plans", []):
            walk(child)

    walk(top["Plan"])
    found["execution_ms"] = top["Execution Time"]
    return found


async def _join_state(conn: asyncpg.Connection, pair: PairResult, name: str, reps: int) -> None:
    plans = []
    latencies = []
    began = time.perf_counter()
    for _ in range(reps):
        plans.append(_plan(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {JOIN_SQL}")))
        latencies.append(float(plans[-1]["execution_ms"]))
    variant = summarize("bloat", name, [Round(latencies, time.perf_counter() - began)], unit="queries/s")
    variant.extra.update({k: v for k, v in plans[-1].items() if k != "execution_ms"})
    variant.extra["execution_ms_median"] = round(statistics.median(latencies), 3)
    pair.variants.append(variant)


async def run(ctx: BenchContext) -> PairResult:
    pair = PairResult("bloat", "Bloat and stale statistics (autovacuum off)")
    n, rounds = ctx.sizes.bloat_rows, ctx.sizes.rounds
    reps = 3 if ctx.quick else 5
    conn = await asyncpg.connect(ctx.data.url)
    try:
        await conn.execute("SET max_parallel_workers_per_gather = 0")  # one core's scan: comparable states
        await conn.execute("DROP TABLE IF EXISTS bench_bloat")
        await conn.execute(
            "CREATE TABLE bench_bloat (id int PRIMARY KEY, n int, pad text) WITH (autovacuum_enabled = false)"
        )
        await conn.execute(f"INSERT INTO bench_bloat SELECT g, 0, repeat('x', 60) FROM generate_series(1, {n}) g")
        await conn.execute("VACUUM ANALYZE bench_bloat")
        await _state(conn, pair, "fresh table", rounds, reps)
        for _ in range(UPDATE_PASSES):
            await conn.execute("UPDATE bench_bloat SET n = n + 1")
        await _state(conn, pair, f"after {UPDATE_PASSES} full-table UPDATEs", rounds, reps)
        await conn.execute("VACUUM bench_bloat")
        await _state(conn, pair, "after VACUUM", rounds, reps)
        await conn.execute("VACUUM FULL bench_bloat")
        await _state(conn, pair, "after VACUUM FULL", rounds, reps)
        await conn.execute("DROP TABLE bench_bloat")

        m = ctx.sizes.stale_rows
        accounts = max(1000, m // 10)
        await conn.execute("DROP TABLE IF EXISTS bench_events, bench_accounts")
        await conn.execute("CREATE TABLE bench_accounts (id int PRIMARY KEY, name text)")
        await conn.execute(
            f"INSERT INTO bench_accounts SELECT g, 'account ' || g FROM generate_series(1, {accounts}) g"
        )
        await conn.execute(
            "CREATE TABLE bench_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id int, kind int,"
            " payload text) WITH (autovacuum_enabled = false)"
        )
        await conn.execute("CREATE INDEX bench_events_kind ON bench_events (kind)")
        await conn.execute(
            "INSERT INTO bench_events (account_id, kind, payload) "
            f"SELECT 1 + g % {accounts}, g, 'x' FROM generate_series(1, 1000) g"
        )
        await conn.execute("ANALYZE bench_events, bench_accounts")
        await conn.execute(
            "INSERT INTO bench_events (account_id, kind, payload) "
            f"SELECT 1 + (g::bigint * 7919) % {accounts}, 1, 'bulk' FROM generate_series(1, {m}) g"
        )
        await _join_state(conn, pair, "stale statistics after bulk load", reps)
        await conn.execute("ANALYZE bench_events")
        await _join_state(conn, pair, "fresh statistics (after ANALYZE)", reps)
        await conn.execute("DROP TABLE bench_events, bench_accounts")
    finally:
        await conn.close()

    v = pair.variant
    fresh, bloated = v("fresh table"), v(f"after {UPDATE_PASSES} full-table UPDATEs")
    vac, full = v("after VACUUM"), v("after VACUUM FULL")
    stale, analyzed = v("stale statistics after bulk load"), v("fresh statistics (after ANALYZE)")
    pair.ratios = {
        "bloated/fresh size": ratio(bloated.extra["total_bytes"], fresh.extra["total_bytes"]),
        "bloated/fresh scan p50": ratio(bloated.p50_ms, fresh.p50_ms),
        "bloated/fresh pages scanned": ratio(bloated.extra["scan_pages"], fresh.extra["scan_pages"]),
        "VACUUM/bloated scan p50": ratio(vac.p50_ms, bloated.p50_ms),
        "VACUUM FULL/bloated size": ratio(full.extra["total_bytes"], bloated.extra["total_bytes"]),
        "fresh/stale statistics p50": ratio(analyzed.p50_ms, stale.p50_ms),
    }
    pair.facts.update(rows=n, update_passes=UPDATE_PASSES, bulk_rows=m)
    pair.notes.append(
        "pages read by the scan: "
        + ", ".join(f"{x.name} {x.extra['scan_pages']:,}" for x in (fresh, bloated, vac, full))
        + f"; dead tuples after the UPDATEs: {bloated.extra['dead_tuples']:,}."
    )
    pair.notes.append(
        f"stale statistics: estimated {stale.extra.get('estimated_rows')} rows, "
        f"actual {stale.extra.get('actual_rows')} "
        f"({stale.extra.get('scan')}, {stale.extra.get('join')}); after ANALYZE: estimated "
        f"{analyzed.extra.get('estimated_rows')} ({analyzed.extra.get('scan')}, {analyzed.extra.get('join')})."
    )
    return pair
