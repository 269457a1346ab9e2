"""Dexter-style workload sources and filters: samples of pg_stat_activity, standard input, --include/--exclude
tables and a minimum total time, on the advisor's workload database (PostgreSQL 15 + HypoPG)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import asyncpg

from pgpulse.advisor.workload import (
    WorkloadQuery,
    filter_tables,
    from_pg_stat_activity,
    from_pg_stat_statements,
    from_stdin,
)

SLOW = "WITH s AS MATERIALIZED (SELECT pg_sleep(2)) SELECT count(*) FROM events, s WHERE note = 'note 5'"


def test_pg_stat_activity_samples_give_a_workload_to_advise(workload: Any, advise: Any) -> None:
    async def sample() -> list[WorkloadQuery]:
        runner = await asyncpg.connect(workload.url)
        sampler = await asyncpg.connect(workload.url)
        try:
            slow = asyncio.create_task(runner.fetchval(SLOW))
            queries = await from_pg_stat_activity(sampler, seconds=1.5)
            assert await slow == 1
            return queries
        finally:
            await runner.close()
            await sampler.close()

    queries = asyncio.run(sample())
    assert [q.sql for q in queries] == [SLOW] and queries[0].source == "pg_stat_activity"
    assert queries[0].calls >= 2  # seen in several samples: about calls x 50 ms of running time
    code, out, err = advise(workload.url, "-f", "json", "-q", queries[0].sql)
    assert code == 0, err
    doc = json.loads(out)
    assert [[c["name"] for c in r["columns"]] for r in doc["recommendations"]] == [["note"]]


def test_stdin_statements() -> None:
    queries = from_stdin(io.StringIO("SELECT * FROM events WHERE note = ';'; SELECT 1 FROM accounts"))
    assert [(q.sql, q.source) for q in queries] == [
        ("SELECT * FROM events WHERE note = ';'", "stdin"),
        ("SELECT 1 FROM accounts", "stdin"),
    ]


def test_include_and_exclude_tables() -> None:
    queries = [
        WorkloadQuery("SELECT * FROM events WHERE note = 'x'", "file"),
        WorkloadQuery("SELECT * FROM accounts a JOIN events e ON e.account_id = a.id", "file"),
        WorkloadQuery("SELECT * FROM public.kv WHERE key = 'k'", "file"),
        WorkloadQuery("SELEC nonsense", "file"),
    ]
    assert [q.sql for q in filter_tables(queries, include=["events"])] == [q.sql for q in queries[:2]] + [
        "SELEC nonsense"  # kept: the advisor reports why it cannot read it
    ]
    assert [q.sql for q in filter_tables(queries, exclude=["accounts", "public.kv"])] == [
        queries[0].sql,
        "SELEC nonsense",
    ]


def test_min_total_time(workload: Any) -> None:
    async def read() -> tuple[list[WorkloadQuery], list[WorkloadQuery]]:
        conn = await asyncpg.connect(workload.url)
        try:
            await conn.fetch("SELECT count(*) FROM events WHERE amount > 10")  # a full scan: some ms
            await conn.fetch("SELECT value FROM kv WHERE key = 'k1'")  # microseconds
            everything = await from_pg_stat_statements(conn, 100)
            slow = await from_pg_stat_statements(conn, 100, min_total_ms=1.0)
            return everything, slow
        finally:
            await conn.close()

    everything, slow = asyncio.run(read())
    assert any("FROM kv" in q.sql for q in everything) and not any("FROM kv" in q.sql for q in slow)
    assert slow and all(q.total_ms >= 1.0 for q in slow)
    assert [q.sql for q in slow] == [q.sql for q in everything if q.total_ms >= 1.0]
