"""Benchmark of the workload advice: many query shapes on many tables, advised end to end, against the sum of
single-query advice.

``python -m pgpulse.advisor.benchmark postgresql://…/scratch_db`` (a database with HypoPG that this run may fill:
it creates ``pgpulse_bench_t00`` … tables there) prints the wall time, the number of EXPLAINs, the indexes chosen
and the estimated saving, for the set selection and for one index per query.

The schema: ``tables`` tables of ``rows`` rows, each with ``a`` (1,000 values), ``b`` (50), ``c`` (a status:
'done' for 97 %, 'failed' for 1 %), ``d`` (a timestamp), ``e`` (20,000 values). The workload: ``shapes`` query
shapes drawn from eight templates (equality, two equalities, equality + ORDER BY … LIMIT, ranges, a rare status),
with observed times that fall off like a real workload's (the top shapes take most of the time).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass

import asyncpg

from pgpulse.advisor.selection import Workitem, per_query_best, prepare_work, select_indexes
from pgpulse.advisor.workload import Source, WorkloadQuery
from pgpulse.sql import quote_ident

TEMPLATES = (
    "SELECT * FROM {t} WHERE a = {a}",
    "SELECT * FROM {t} WHERE a = {a} AND b = {b}",
    "SELECT * FROM {t} WHERE b = {b} ORDER BY d DESC LIMIT 10",
    "SELECT id FROM {t} WHERE e BETWEEN {e} AND {e} + 50",
    "SELECT * FROM {t} WHERE a = {a} ORDER BY d LIMIT 5",
    "SELECT count(*) FROM {t} WHERE b = {b} AND e > {e}",
    "SELECT * FROM {t} WHERE c = 'failed' ORDER BY d DESC LIMIT 20",
    "SELECT id FROM {t} WHERE a = {a} AND c = 'done'",
)


@dataclass
class BenchResult:
    tables: int
    shapes: int
    seconds_prepare: float
    seconds_select: float
    explains_select: int
    chosen: list[str]
    saving_ms: float
    seconds_single: float
    explains_single: int
    single_indexes: list[str]
    single_saving_ms: float
    total_ms: float

    def text(self) -> str:
        share = self.saving_ms / self.single_saving_ms if self.single_saving_ms else 0.0
        return "\n".join(
            [
                f"workload: {self.shapes} query shapes on {self.tables} tables, {self.total_ms:,.0f} ms observed",
                f"set selection: {len(self.chosen)} indexes, saves {self.saving_ms:,.0f} ms "
                f"({self.saving_ms / self.total_ms:.1%} of the time); {self.explains_select:,} EXPLAINs, "
                f"{self.seconds_prepare + self.seconds_select:,.1f} s (prepare {self.seconds_prepare:,.1f} s)",
                f"one index per query: {len(self.single_indexes)} indexes, saves {self.single_saving_ms:,.0f} ms; "
                f"{self.explains_single:,} EXPLAINs, {self.seconds_single:,.1f} s",
                f"set / single: {len(self.chosen)}/{len(self.single_indexes)} indexes, {share:.1%} of the saving",
            ]
        )


def table_name(i: int) -> str:
    return f"pgpulse_bench_t{i:02d}"


async def build(conn: asyncpg.Connection, tables: int, rows: int) -> None:
    await conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    for i in range(tables):
        name = quote_ident(table_name(i))
        await conn.execute(f"DROP TABLE IF EXISTS {name}")
        await conn.execute(
            f"CREATE TABLE {name} (id bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL, c text NOT NULL,"
            " d timestamptz NOT NULL, e int NOT NULL)"
        )
        await conn.execute(
            f"INSERT INTO {name} SELECT g, (hashint4(g) & 2147483647) % 1000, g % 50,"
            " CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 100 < 3 THEN 'queued' ELSE 'done' END,"
            " timestamptz '2026-01-01' + g * interval '1 minute', (hashint4(g * 7) & 2147483647) % 20000"
            " FROM generate_series(1, $1::int) g",
            rows,
        )
        await conn.execute(f"ANALYZE {name}")


def workload(tables: int, shapes: int, seed: int) -> list[WorkloadQuery]:
    rng = random.Random(seed)
    queries = []
    for n in range(shapes):
        table = quote_ident(table_name(n % tables))
        template = TEMPLATES[(n // tables + n) % len(TEMPLATES)]
        sql = template.format(t=table, a=rng.randrange(1000), b=rng.randrange(50), e=rng.randrange(20000))
        calls = max(1, int(2000 / (1 + n) ** 0.8))
        queries.append(WorkloadQuery(sql, Source.file, calls, calls * 1.0))  # ~1 ms a call before any index
    return queries


def _saving(work: list[Workitem], after: dict[str, float]) -> float:
    return sum(w.total_ms * (w.before - after.get(w.key, w.before)) / w.before for w in work if w.before > 0)


async def run(url: str, tables: int = 50, shapes: int = 200, rows: int = 10_000, seed: int = 7) -> BenchResult:
    conn = await asyncpg.connect(url)
    try:
        await build(conn, tables, rows)
        queries = workload(tables, shapes, seed)
        began = time.perf_counter()
        work, _ = await prepare_work(conn, queries)
        prepared = time.perf_counter()
        selection = await select_indexes(conn, work)
        selected = time.perf_counter()
        single, single_explains = await per_query_best(conn, work)
        done = time.perf_counter()
    finally:
        await conn.close()
    single_indexes = sorted({c.create_sql(False, "_") for c, _ in single.values()})
    return BenchResult(
        tables=tables,
        shapes=len(work),
        seconds_prepare=prepared - began,
        seconds_select=selected - prepared,
        explains_select=selection.explains + len(work),
        chosen=[c.candidate.create_sql(False) for c in selection.chosen],
        saving_ms=_saving(work, selection.after),
        seconds_single=done - selected,
        explains_single=single_explains + len(work),
        single_indexes=single_indexes,
        single_saving_ms=_saving(work, {k: after for k, (_, after) in single.items()}),
        total_ms=sum(w.total_ms for w in work),
    )


@dataclass
class CommandResult:
    """The same workload through the advisor's own pipeline (what ``pgpulse advise`` runs): per-query
    verification with representative values, then the set selection."""

    seconds: float
    explains: int
    indexes: list[str]
    saving_ms: float
    write_ms: float
    per_query_indexes: int  # distinct indexes the per-query verdicts proposed before the selection
    verdicts: dict[str, int]

    def text(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.verdicts.items()))
        return (
            f"pgpulse advise pipeline: {len(self.indexes)} indexes (per-query verdicts proposed "
            f"{self.per_query_indexes}), saves {self.saving_ms:,.0f} ms, their writes ~{self.write_ms:,.0f} ms; "
            f"{self.explains:,} EXPLAINs, "
            f"{self.seconds:,.1f} s; verdicts: {counts}"
        )


async def run_advisor(url: str, tables: int = 50, shapes: int = 200, seed: int = 7) -> CommandResult:
    """Advise the benchmark's workload (tables already built by :func:`run`) the way the command does."""
    from pgpulse.advisor.advise import Advisor, Options
    from pgpulse.advisor.verify import Verifier

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET default_transaction_read_only = on")
        began = time.perf_counter()
        verifier = await Verifier.create(conn, allow_build=False)
        advisor = Advisor(conn, verifier, Options(), lambda _: None)
        advice = await advisor.run(workload(tables, shapes, seed))
        seconds = time.perf_counter() - began
    finally:
        await conn.close()
    verdicts: dict[str, int] = {}
    for verdict in advice.verdicts:
        verdicts[verdict.status] = verdicts.get(verdict.status, 0) + 1
    per_query = {c.create_sql(False, "_") for c in advisor.per_query_choices}
    return CommandResult(
        seconds,
        verifier.explains + advice.explains,
        [r.create_sql for r in advice.recommendations],
        sum(r.saving_ms or 0.0 for r in advice.recommendations),
        sum(r.write_ms or 0.0 for r in advice.recommendations),
        len(per_query),
        verdicts,
    )


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m pgpulse.advisor.benchmark postgresql://…/scratch_db", file=sys.stderr)
        return 2
    result = asyncio.run(run(sys.argv[1]))
    print(result.text())
    for create in result.chosen:
        print(f"  {create};")
    command = asyncio.run(run_advisor(sys.argv[1]))
    print(command.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
