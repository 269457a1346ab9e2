"""``pgpulse advise`` chooses the workload's indexes together (PostgreSQL 15 + HypoPG), through the real command:
which queries each index serves, their costs before → after, the saving per hour beside the write cost, an
index that does not pay for its writes declined with that verdict, an existing index made redundant listed for
DROP, generic-plan queries kept in the selection; and the Dexter-style sources and filters (standard input,
samples of pg_stat_activity, --include/--exclude, --min-time)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from pgpulse.cli import app
from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import EmbeddedPostgres

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE events (
    id bigint PRIMARY KEY,
    account_id int NOT NULL,
    kind text NOT NULL,
    created_at timestamptz NOT NULL,
    note text,
    ref text  -- always NULL: no statistics to pick a value from, so a query on it is costed as a generic plan
);
INSERT INTO events
SELECT g,
       CASE WHEN g % 10 < 3 THEN 1 ELSE 2 + (hashint4(g) & 2147483647) % 1999 END,
       (ARRAY['click', 'view', 'buy'])[1 + g % 3],
       timestamptz '2026-01-01' + (hashint4(g * 13) & 2147483647) % 31536000 * interval '1 second',
       'note ' || g,
       NULL
  FROM generate_series(1, 60000) g;
CREATE INDEX events_account_id_idx ON events (account_id);
CREATE TABLE churn (id int PRIMARY KEY, tag text NOT NULL, v int NOT NULL);
INSERT INTO churn SELECT g, 't' || (g % 2000), 0 FROM generate_series(1, 20000) g;
ANALYZE;
"""
CHURN_WRITES = 5 * 20_000  # updates after the statistics reset: 100,000 x 2 us = 200 ms of index maintenance
# Texts as pgpulse shows them (normalized): run with bound values, so pg_stat_statements keeps them as they are.
HOT = "SELECT * FROM events WHERE account_id = $1 AND kind = $2 ORDER BY created_at DESC LIMIT $3"
IDS = "SELECT id, created_at FROM events WHERE account_id = $1 AND kind = $2 ORDER BY created_at DESC LIMIT $3"
TAG = "SELECT * FROM churn WHERE tag = $1"
NOTE = "SELECT id FROM events WHERE note = $1"
HOT_INDEX = ["account_id", "kind", "created_at DESC"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def timed_db(hypo_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """Statistics reset after the load, then churn written all the time and the workload run: pg_stat_statements
    and pg_stat_user_tables cover the same window."""
    url = await create_database(hypo_server.url(), "advise_workload", replace=True)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()  # its backend flushes the load's table statistics on exit
    conn = await asyncpg.connect(url)
    try:
        await _poll(conn, "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'events'", 60_000)
        await conn.execute("SELECT pg_stat_reset()")  # the bulk load is not this workload's writes
        for _ in range(CHURN_WRITES // 20_000):
            await conn.execute("UPDATE churn SET v = v + 1")
        await conn.execute("SELECT pg_stat_statements_reset()")
        for account in range(25):
            await conn.fetch(HOT, 1 + account % 3, "buy", 10)
            await conn.fetch(IDS, 1, "view", 3)
        for i in range(3):
            await conn.fetch(TAG, f"t{i}")
    finally:
        await conn.close()  # a closing backend flushes its table statistics
    conn = await asyncpg.connect(url)
    try:
        await _poll(conn, "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'churn'", CHURN_WRITES)
        assert await conn.fetchval("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'events'") == 0
    finally:
        await conn.close()
    yield url


async def _poll(conn: asyncpg.Connection, sql: str, at_least: int) -> None:
    """Until pg_stat_user_tables shows the writes (a backend's table statistics reach it when it flushes)."""
    for _ in range(400):
        seen = await conn.fetchval(sql)
        if seen >= at_least:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{sql}: never reached {at_least} (saw {seen})")


def _run(*args: str, stdin: str | None = None) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["advise", *args, "-f", "json"], input=stdin)
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def _indexes(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        (r["table"], [c["name"] + (" DESC" if c["desc"] else "") for c in r["columns"]]) for r in doc["recommendations"]
    ]


def _served(rec: dict[str, Any]) -> list[str]:
    return sorted(q["query"] for q in rec["queries"])


def test_pg_stat_statements_workload_chosen_together_with_saving_per_hour_and_write_cost(timed_db: str) -> None:
    doc = _run(timed_db)
    assert doc["selection"] == "workload" and doc["method"] == "hypopg"
    assert _indexes(doc) == [("events", HOT_INDEX)]  # one index serves both events queries
    rec = doc["recommendations"][0]
    assert _served(rec) == sorted([HOT, IDS])
    for query in rec["queries"]:  # the planner uses it: each served query's cost falls at least 2x
        assert query["status"] == "improved" and query["cost_after"] * 2 <= query["cost_before"]
        assert query["index"] == "ix_events_account_id_kind_created_at"
    assert doc["window_hours"] is not None and doc["window_hours"] > 0  # pg_stat_statements_info.stats_reset
    assert rec["saving_ms"] > 0 and rec["write_ms"] == 0  # events is not written after the reset
    assert rec["saving_ms_per_hour"] == pytest.approx(rec["saving_ms"] / doc["window_hours"])
    assert "ms/hour" in rec["saving"] and "writes cost" in rec["saving"]
    # churn's index would serve TAG, but 100,000 updates cost more to maintain than 3 lookups save
    tag = next(q for q in doc["queries"] if q["query"] == TAG)
    assert tag["status"] == "no-gain" and tag["index"] is None
    assert "writes cost about" in tag["reason"]
    assert "(tag) on churn" in tag["reason"]
    # the chosen index starts with account_id: the existing single-column index is listed for DROP
    assert doc["redundant"] == [
        {
            "index": "events_account_id_idx",
            "table": "events",
            "because": "ix_events_account_id_kind_created_at",
            "drop": "DROP INDEX CONCURRENTLY public.events_account_id_idx;",
        }
    ]


def test_filters_include_exclude_and_min_time(timed_db: str) -> None:
    only_churn = _run(timed_db, "--include", "churn")
    assert [q["query"] for q in only_churn["queries"]] == [TAG] and only_churn["recommendations"] == []
    no_churn = _run(timed_db, "--exclude", "churn", "--exclude", "public.kv")
    assert sorted(q["query"] for q in no_churn["queries"]) == sorted([HOT, IDS])
    result = CliRunner().invoke(app, ["advise", timed_db, "--min-time", "10000000"])  # 10,000 s: nothing is that slow
    assert result.exit_code == 2 and "every query filtered out" in result.stderr
    kept = _run(timed_db, "--min-time", "0.001", "--include", "events")
    assert sorted(q["query"] for q in kept["queries"]) == sorted([HOT, IDS])


def test_generic_plan_query_is_part_of_the_selection(timed_db: str) -> None:
    """``ref`` is always NULL: no value to bind, so its query is costed as PostgreSQL's generic plan, with the
    workload's hypothetical indexes present, and gets its index like any other query."""
    doc = _run(timed_db, "-q", "SELECT id FROM events WHERE ref = $1", "-q", NOTE)
    assert sorted(_indexes(doc)) == [("events", ["note"]), ("events", ["ref"])]
    generic = next(q for q in doc["queries"] if "ref" in q["query"])
    assert generic["generic_plan"] is True and generic["status"] == "improved" and generic["index"] == "ix_events_ref"
    assert generic["cost_after"] * 2 <= generic["cost_before"]
    untimed = next(r for r in doc["recommendations"] if r["columns"][0]["name"] == "note")
    assert "write cost is not weighed" in untimed["saving"] and untimed["saving_ms_per_hour"] is None


def test_statements_from_stdin_in_a_real_process(timed_db: str) -> None:
    pgpulse = Path(sys.executable).with_name("pgpulse")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    out = subprocess.run(
        [str(pgpulse), "advise", timed_db, "--stdin", "-f", "json"],
        input=f"{NOTE};\n-- a comment\nSELECT * FROM churn WHERE id = 5;",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert _indexes(doc) == [("events", ["note"])]
    assert [q["source"] for q in doc["queries"]] == ["stdin", "stdin"]
    assert doc["queries"][1]["status"] == "covered"  # churn_pkey serves it
    # the same through --file - in-process
    assert _indexes(_run(timed_db, "--file", "-", stdin=NOTE)) == [("events", ["note"])]


def test_pg_stat_activity_samples_through_the_command(timed_db: str) -> None:
    slow = "WITH s AS MATERIALIZED (SELECT pg_sleep(4)) SELECT count(*) FROM events, s WHERE note = 'note 9'"
    started = threading.Event()

    async def run_slow() -> None:
        conn = await asyncpg.connect(timed_db)
        try:
            task = asyncio.create_task(conn.fetchval(slow))
            watcher = await asyncpg.connect(timed_db)
            try:
                deadline = time.monotonic() + 10
                while not await watcher.fetchval(
                    "SELECT true FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(4)%' "
                    "AND pid <> pg_backend_pid()"
                ):
                    assert time.monotonic() < deadline, "the slow statement never showed up in pg_stat_activity"
                    await asyncio.sleep(0.02)
            finally:
                await watcher.close()
            started.set()
            await task
        finally:
            started.set()
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(run_slow()))
    thread.start()
    try:
        assert started.wait(60)
        doc = _run(timed_db, "--pg-stat-activity", "1")
    finally:
        thread.join()
    assert [q["source"] for q in doc["queries"]] == ["pg_stat_activity"]
    assert _indexes(doc) == [("events", ["note"])]
    assert doc["window_hours"] == pytest.approx(1 / 3600)


class _Op:
    """Stands in for ``alembic.op``: records the ``create_index`` call the snippet makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def get_context(self) -> Any:
        return self

    def autocommit_block(self) -> Any:
        return contextlib.nullcontext()

    def create_index(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))


def test_alembic_snippet_for_partial_include_gin_and_expression_indexes_compiles_to_the_same_ddl() -> None:
    """The Alembic call, compiled by SQLAlchemy's PostgreSQL dialect, gives the CREATE INDEX the report prints."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex

    from pgpulse.advisor.advise import Recommendation
    from pgpulse.advisor.candidates import Candidate, IndexColumn
    from pgpulse.advisor.catalog import TableInfo

    info = TableInfo(oid=1, schema="public", name="jobs", rows=1e6, pages=1e4, total_bytes=0, writes=0, scans=0)
    cases = [
        Candidate(info, "public.jobs", (IndexColumn("created_at", desc=True),), 0, where="status = 'failed'"),
        Candidate(info, "public.jobs", (IndexColumn("owner_id"),), 1, include=("title", "state")),
        Candidate(info, "public.jobs", (IndexColumn("tags"),), 0, method="gin"),
        Candidate(info, "public.jobs", (IndexColumn("lower(email)", expression=True),), 1),
    ]
    names = ("created_at", "status", "owner_id", "title", "state", "tags", "email")
    for candidate in cases:
        rec = Recommendation(candidate, 0)
        op = _Op()
        exec(rec.alembic(), {"op": op, "sa": sa})
        (name, table_name, columns), kwargs = op.calls[0]
        table = sa.Table(table_name, sa.MetaData(), *[sa.Column(c, sa.Text) for c in names])
        index = sa.Index(name, *[table.c[c] if isinstance(c, str) else c for c in columns], **kwargs)
        index._set_parent(table)  # what Alembic's op.create_index does with its table
        ddl = str(CreateIndex(index).compile(dialect=postgresql.dialect()))
        expected = rec.create_sql.rstrip(";").replace(" ON public.jobs", " ON jobs")
        assert " ".join(ddl.split()) == expected, candidate


def test_covering_index_with_include_gives_an_index_only_scan(hypo_server: EmbeddedPostgres) -> None:
    """A query that reads one more column than its key: ``INCLUDE (amount)`` lets the index answer it alone. The
    planner costs an index-only scan by the table's all-visible share (``pg_class.relallvisible``), which only
    VACUUM sets, and only on pages whose rows carry the "committed" hint bit. The test server runs with
    ``synchronous_commit = off``, and a hint bit is not set while the commit record is not yet flushed: VACUUM
    right after an asynchronous commit leaves ``relallvisible`` at 0 (what a previous attempt saw). The load
    commits synchronously, so its WAL is flushed before VACUUM reads the pages."""
    query = "SELECT sum(amount) FROM ledger WHERE account_id = $1"

    async def setup() -> str:
        url = await create_database(hypo_server.url(), "advise_covering", replace=True)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET synchronous_commit = on")
            await conn.execute(
                "CREATE EXTENSION IF NOT EXISTS hypopg;"
                "CREATE TABLE ledger (id int PRIMARY KEY, account_id int NOT NULL, amount numeric NOT NULL, pad text);"
                "INSERT INTO ledger SELECT g, g % 500, g % 97, repeat('x', 200) FROM generate_series(1, 60000) g;"
            )
        finally:
            await conn.close()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("VACUUM (ANALYZE) ledger")
            pages, visible = await conn.fetchrow(
                "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'ledger'"
            )
            assert pages > 0 and visible == pages, (pages, visible)
        finally:
            await conn.close()
        return url

    url = asyncio.run(setup())
    doc = _run(url, "-q", query)
    rec = doc["recommendations"]
    assert [r["create"] for r in rec] == [
        "CREATE INDEX CONCURRENTLY ix_ledger_account_id_incl ON ledger (account_id) INCLUDE (amount);"
    ]
    assert rec[0]["queries"][0]["cost_after"] * 10 < rec[0]["queries"][0]["cost_before"]

    async def plan_with_the_real_index() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(rec[0]["create"])
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", 7)
        finally:
            await conn.close()
        nodes, stack = [], [json.loads(raw)[0]["Plan"]]
        while stack:
            node = stack.pop()
            nodes.append(f"{node['Node Type']} {node.get('Index Name', '')}".strip())
            stack.extend(node.get("Plans", []))
        return nodes

    assert "Index Only Scan ix_ledger_account_id_incl" in asyncio.run(plan_with_the_real_index())
