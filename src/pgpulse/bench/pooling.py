"""Pair 4 — connection pooling: GET /users/{id} (one indexed row) with NullPool vs QueuePool, c=1 and c=32,
and what one new connection costs next to one query on an open connection.

A new PostgreSQL connection is a TCP handshake, SCRAM authentication and a forked backend that warms its
caches from nothing: milliseconds, against tens of microseconds for a query on an open connection. NullPool
pays that on every request; under concurrency the forks also compete for the same cores.
"""

from __future__ import annotations

import asyncpg

from pgpulse.bench.appserver import serve_app
from pgpulse.bench.context import BenchContext
from pgpulse.bench.rounds import HttpCase, http_rounds, interleaved_loops, server_cpu_ms_per_request
from pgpulse.bench.stats import PairResult, Target, ratio, summarize

CONCURRENCY = (1, 32)


async def _connect_and_close(url: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.close()


async def run(ctx: BenchContext) -> PairResult:
    pair = PairResult("pooling", "Pooling: GET /users/{id} with NullPool vs QueuePool")
    path = f"/users/{ctx.data.plain_user_id}"
    sz = ctx.sizes
    off = {"PGPULSE_PROFILER_ENABLED": "false"}
    async with (
        serve_app("queue", ctx.data.url, {**off, "PGPULSE_POOL": "queue"}) as queue,
        serve_app("null", ctx.data.url, {**off, "PGPULSE_POOL": "null"}) as null,
    ):
        cases = [
            HttpCase(f"{name} c={c}", app.port, path, c, app.process.pid)
            for c in CONCURRENCY
            for name, app in (("NullPool", null), ("QueuePool", queue))
        ]
        results = await http_rounds(cases, sz.rounds, sz.http_seconds, sz.http_warmup)
    for case in cases:
        name = case.key.split(" c=")[0]
        variant = summarize(
            "pooling", name, [r.round for r in results[case.key]], concurrency=case.concurrency, queries=1
        )
        variant.extra["server_cpu_ms"] = server_cpu_ms_per_request(results[case.key])
        pair.variants.append(variant)

    conn = await asyncpg.connect(ctx.data.url)
    try:
        loops = await interleaved_loops(
            {
                "new connection (connect + close)": lambda: _connect_and_close(ctx.data.url),
                "SELECT 1 on an open connection": lambda: conn.fetchval("SELECT 1"),
            },
            sz.rounds,
            sz.query_budget_s,
        )
    finally:
        await conn.close()
    for name, rounds in loops.items():
        pair.variants.append(summarize("pooling", name, rounds, unit="ops/s"))

    v = pair.variant
    connect_ms = v("new connection (connect + close)").p50_ms
    query_ms = v("SELECT 1 on an open connection").p50_ms
    pair.ratios = {
        "QueuePool/NullPool throughput c=32": ratio(v("QueuePool c=32").throughput, v("NullPool c=32").throughput),
        "QueuePool/NullPool throughput c=1": ratio(v("QueuePool c=1").throughput, v("NullPool c=1").throughput),
        "new connection / query (p50)": ratio(connect_ms, query_ms),
    }
    pair.facts.update(connect_ms=connect_ms, query_ms=query_ms)
    pair.targets = [
        Target(
            "QueuePool ≥ 5× NullPool throughput at c=32", pair.ratios["QueuePool/NullPool throughput c=32"], 5.0, ">="
        )
    ]
    pair.notes.append(
        f"one new connection costs {connect_ms:.2f} ms p50 = {pair.ratios['new connection / query (p50)']:.0f} "
        f"queries on an open one ({query_ms * 1000:.0f} µs)."
    )
    return pair
