"""Pair 1 — eager loading: lazy vs selectin vs single-query JSON for a user with 50 posts x 10 comments.

Served by the real app under uvicorn at concurrency 1 and 32, next to two floors no strategy can beat: the
same JSON fetched by asyncpg alone in-process (no HTTP, no ORM) and PostgreSQL's own execution time for that
SQL (EXPLAIN ANALYZE). Query counts come from the profiler's Server-Timing header on a second app process,
so the timed process runs without the profiler.
"""

from __future__ import annotations

import json
import re
import statistics

import asyncpg

from pgpulse.bench.appserver import fetch_header, serve_app
from pgpulse.bench.context import BenchContext
from pgpulse.bench.rounds import HttpCase, http_rounds, interleaved_loops, server_cpu_ms_per_request
from pgpulse.bench.stats import PairResult, Target, ratio, summarize
from pgpulse.demo.loading import SINGLE_SQL

STRATEGIES = ("lazy", "selectin", "single")
CONCURRENCY = (1, 32)
HTTP_FLOOR = "HTTP floor: GET /docs, no database"
_QUERIES = re.compile(r'desc="(\d+) queries"')


def raw_sql() -> str:
    return str(SINGLE_SQL.text).replace(":user_id", "$1")


async def run(ctx: BenchContext) -> PairResult:
    pair = PairResult("eager", "Eager loading: GET /users/{id}/posts (50 posts × 10 comments)")
    user = ctx.data.showcase_user_id
    path = f"/users/{user}/posts?strategy="
    queries: dict[str, int | None] = {}
    async with serve_app(
        "profiled", ctx.data.url, {"PGPULSE_PROFILER_ENABLED": "true", "PGPULSE_SERVER_TIMING": "true"}
    ) as app:
        for s in STRATEGIES:
            header = await fetch_header(app.port, path + s, "server-timing") or ""
            found = _QUERIES.search(header)
            queries[s] = int(found.group(1)) if found else None
    async with serve_app("plain", ctx.data.url, {"PGPULSE_PROFILER_ENABLED": "false"}) as app:
        cases = [
            HttpCase(f"{s} c={c}", app.port, path + s, c, app.process.pid) for c in CONCURRENCY for s in STRATEGIES
        ]
        # The cost of HTTP + FastAPI alone: a page that touches no database, served by the same process.
        cases.insert(0, HttpCase(f"{HTTP_FLOOR} c=1", app.port, "/docs", 1, app.process.pid))
        sz = ctx.sizes
        results = await http_rounds(cases, sz.rounds, sz.http_seconds, sz.http_warmup)
    for case in cases:
        name = case.key.split(" c=")[0]
        variant = summarize(
            "eager",
            name,
            [r.round for r in results[case.key]],
            concurrency=case.concurrency,
            queries=queries.get(name, 0),
        )
        variant.extra["server_cpu_ms"] = server_cpu_ms_per_request(results[case.key])
        pair.variants.append(variant)

    conn = await asyncpg.connect(ctx.data.url)
    try:
        stmt = await conn.prepare(raw_sql())
        body = await stmt.fetchval(user)
        loops = await interleaved_loops({"raw": lambda: stmt.fetchval(user)}, sz.rounds, sz.query_budget_s)
        raw = summarize("eager", "raw asyncpg floor", loops["raw"], concurrency=1, queries=1)
        raw.extra["body_bytes"] = len(body.encode())
        pair.variants.append(raw)
        exec_ms = []
        for _ in range(5):
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {raw_sql()}", user)
            exec_ms.append(float(json.loads(plan)[0]["Execution Time"]))
        pair.facts["server_execution_ms"] = round(statistics.median(exec_ms), 3)
        pair.facts["response_bytes"] = len(body.encode())
    finally:
        await conn.close()

    v = pair.variant
    pair.ratios = {
        "single/selectin throughput c=32": ratio(v("single c=32").throughput, v("selectin c=32").throughput),
        "single/selectin throughput c=1": ratio(v("single c=1").throughput, v("selectin c=1").throughput),
        "selectin/lazy throughput c=32": ratio(v("selectin c=32").throughput, v("lazy c=32").throughput),
        "single/lazy p50 c=1": ratio(v("single c=1").p50_ms, v("lazy c=1").p50_ms),
        "single p50 c=1 / raw floor p50": ratio(v("single c=1").p50_ms, v("raw asyncpg floor c=1").p50_ms),
    }
    pair.targets = [
        Target("single ≥ 4× selectin throughput at c=32", pair.ratios["single/selectin throughput c=32"], 4.0, ">="),
        Target(
            "single p50 within 3× of the raw asyncpg floor (c=1)",
            pair.ratios["single p50 c=1 / raw floor p50"],
            3.0,
            "<=",
        ),
    ]
    pair.notes.append(
        f"PostgreSQL executes the single query in {pair.facts['server_execution_ms']} ms (EXPLAIN ANALYZE); "
        f"asyncpg alone gets the {pair.facts['response_bytes']:,}-byte JSON in "
        f"{v('raw asyncpg floor c=1').p50_ms:.2f} ms p50; HTTP + FastAPI with no database take "
        f"{v(HTTP_FLOOR + ' c=1').p50_ms:.2f} ms p50. The app adds, per request, a pool checkout with pre-ping "
        "(one round trip the raw floor does not pay; GETs run in autocommit, so no BEGIN/ROLLBACK), the session "
        "and the profiler."
    )
    return pair
