"""How long ``pgpulse doctor`` takes on a large schema: 1,000 tables and 3,000 indexes (target < 5 s).

Catalog-heavy checks are the ones that scale with schema size (duplicate indexes compares every index of
a table, bloat estimates read pg_stats); this makes sure none of them is quadratic in the whole database.

    python -m pgpulse.bench.doctor_scale [--tables 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import asdict, dataclass

import asyncpg

from pgpulse.demo.embedded import ephemeral_server
from pgpulse.doctor.runner import run_checks


@dataclass
class DoctorScaleResult:
    tables: int
    indexes: int
    runs_s: list[float]
    median_s: float
    slowest_check: str
    slowest_check_s: float


async def build_schema(url: str, tables: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        for start in range(0, tables, 100):
            statements = []
            for i in range(start, min(start + 100, tables)):
                statements.append(
                    f"CREATE TABLE t{i} (id bigint PRIMARY KEY, a int, b int, c text, d timestamptz);"
                    f"CREATE INDEX t{i}_a ON t{i} (a); CREATE INDEX t{i}_a_b ON t{i} (a, b);"
                    f"INSERT INTO t{i} SELECT g, g % 7, g % 11, 'x', now() FROM generate_series(1, 20) g;"
                )
            await conn.execute("".join(statements))
        await conn.execute("ANALYZE")
        return int(await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"))
    finally:
        await conn.close()


async def measure(url: str, tables: int, rounds: int) -> DoctorScaleResult:
    indexes = await build_schema(url, tables)
    await run_checks(url)  # warm-up: catalog caches
    runs, slowest = [], ("", 0.0)
    for _ in range(rounds):
        began = time.perf_counter()
        report = await run_checks(url)
        runs.append(time.perf_counter() - began)
        for r in report.results:
            if r.seconds > slowest[1]:
                slowest = (r.name, r.seconds)
    return DoctorScaleResult(tables, indexes, [round(r, 3) for r in runs], round(statistics.median(runs), 3), *slowest)


def run(tables: int = 1000, rounds: int = 3) -> DoctorScaleResult:
    with ephemeral_server(fast=True) as server:
        return asyncio.run(measure(server.url(), tables, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = run(args.tables, args.rounds)
    print(asdict(result))
    print(
        f"doctor on {result.tables:,} tables / {result.indexes:,} indexes: median {result.median_s:.2f} s "
        f"over {len(result.runs_s)} runs (target < 5 s) — slowest check {result.slowest_check} "
        f"{result.slowest_check_s:.2f} s"
    )


if __name__ == "__main__":
    main()
