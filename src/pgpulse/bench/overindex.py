"""Pair 3 — the write cost of over-indexing: the same inserts into a 15-column table with 3 vs 47 indexes.

Every index is another B-tree to descend and possibly split on every INSERT (and on every non-HOT UPDATE),
and more pages competing for the cache. The doctor's unused/duplicate index checks exist because of this.
"""

from __future__ import annotations

import itertools
import random
import time

import asyncpg

from pgpulse.bench.context import BenchContext
from pgpulse.bench.stats import PairResult, Round, ratio, summarize

COLUMNS = [f"c{i}" for i in range(1, 15)]  # + id = 15 columns
BATCH = 500


def index_ddl(table: str, count: int) -> list[str]:
    """``count`` indexes including the primary key: single columns first, then column pairs."""
    singles = [(c,) for c in COLUMNS]
    pairs = list(itertools.combinations(COLUMNS, 2))
    chosen = (singles + pairs)[: count - 1]
    return [f"CREATE INDEX {table}_ix{i} ON {table} ({', '.join(cols)})" for i, cols in enumerate(chosen)]


def _rows(n: int, seed: int) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    return [
        tuple([i] + [rng.randrange(1_000_000) if j % 2 else f"v{rng.randrange(100_000)}" for j in range(len(COLUMNS))])
        for i in range(1, n + 1)
    ]


async def run(ctx: BenchContext) -> PairResult:
    pair = PairResult("overindex", "Over-indexing: INSERT cost with 3 vs 47 indexes (15 columns)")
    n = ctx.sizes.overindex_rows
    rows = _rows(n, 7)
    cols = ", ".join(f"{c} {'bigint' if j % 2 else 'text'}" for j, c in enumerate(COLUMNS))
    insert_cols = ", ".join(["id", *COLUMNS])
    placeholders = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 2))
    conn = await asyncpg.connect(ctx.data.url)
    rounds: dict[str, list[Round]] = {}
    counts = {"3 indexes": 3, "47 indexes": 47}
    try:
        for name, count in counts.items():
            table = f"bench_wide_{count}"
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, {cols})")
            for ddl in index_ddl(table, count):
                await conn.execute(ddl)
            real = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = $1", table)
            assert real == count, f"{table} has {real} indexes, expected {count}"
            rounds[name] = []
        sql = {
            name: f"INSERT INTO bench_wide_{count} ({insert_cols}) VALUES ({placeholders})"
            for name, count in counts.items()
        }
        for _ in range(ctx.sizes.rounds):
            for name, count in counts.items():
                await conn.execute(f"TRUNCATE bench_wide_{count}")
                latencies = []
                began = time.perf_counter()
                for start in range(0, n, BATCH):
                    t0 = time.perf_counter()
                    await conn.executemany(sql[name], rows[start : start + BATCH])
                    latencies.append((time.perf_counter() - t0) * 1000.0)
                rounds[name].append(Round(latencies, time.perf_counter() - began))
        for name, count in counts.items():
            variant = summarize("overindex", name, rounds[name], unit="rows/s", items_per_request=BATCH)
            variant.extra["batch_rows"] = BATCH
            variant.extra["table_size_bytes"] = int(
                await conn.fetchval(f"SELECT pg_total_relation_size('bench_wide_{count}')")
            )
            pair.variants.append(variant)
            await conn.execute(f"DROP TABLE bench_wide_{count}")
    finally:
        await conn.close()
    few, many = pair.variant("3 indexes"), pair.variant("47 indexes")
    space = many.extra["table_size_bytes"] / few.extra["table_size_bytes"]
    pair.ratios = {"47/3 indexes insert throughput": ratio(many.throughput, few.throughput)}
    pair.facts["rows_per_round"] = n
    pair.notes.append(
        f"{n:,} rows per round in batches of {BATCH} (executemany); latencies are per batch. "
        f"With 47 indexes the table+indexes take {space:.1f}× the space."
    )
    return pair
