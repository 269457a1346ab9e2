"""The store: two targets share it without mixing, retention downsamples exactly, the target stays untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from pgpulse.history.retention import ORIGIN, Policy, apply_retention, floor_to
from pgpulse.history.snapshot import connect_read_only
from pgpulse.history.store import HEAD_REVISION, MIGRATIONS

from .conftest import run, statement_points, take, wait_stat

MakeDatabase = Callable[..., Awaitable[str]]


def test_head_revision_is_alembics_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


async def test_two_targets_share_one_store_without_mixing(make_database: MakeDatabase, store_url: str) -> None:
    a = await make_database("ha", extensions=("pg_stat_statements",))
    b = await make_database("hb", extensions=("pg_stat_statements",))
    await run(a, "CREATE TABLE only_in_a (id int)")
    await run(b, "CREATE TABLE only_in_b (id int)")
    await asyncio.gather(take(a, store_url, "target-a"), take(b, store_url, "target-b"))
    await run(a, "SELECT count(*) FROM only_in_a WHERE id > $1", repeat=7, args=(1,))
    await run(b, "SELECT count(*) FROM only_in_b WHERE id > $1", repeat=3, args=(1,))
    await asyncio.gather(take(a, store_url, "target-a"), take(b, store_url, "target-b"))

    a_points = await statement_points(store_url, "target-a", "%only_in_%")
    b_points = await statement_points(store_url, "target-b", "%only_in_%")
    assert [(p["query"], p["calls"]) for p in a_points] == [("SELECT count(*) FROM only_in_a WHERE id > $1", 7)]
    assert [(p["query"], p["calls"]) for p in b_points] == [("SELECT count(*) FROM only_in_b WHERE id > $1", 3)]
    conn = await asyncpg.connect(store_url)
    try:
        tables = await conn.fetch(
            """SELECT t.name, s.relname FROM pgpulse_history.relation_series s JOIN pgpulse_history.target t
               USING (target_id) WHERE s.kind = 'table' AND t.name IN ('target-a', 'target-b') ORDER BY 1, 2"""
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in tables] == [("target-a", "only_in_a"), ("target-b", "only_in_b")]


async def test_retention_rolls_points_up_exactly(make_database: MakeDatabase, store_url: str) -> None:
    target = await make_database("hret", extensions=("pg_stat_statements",))
    await run(target, "CREATE TABLE r (id int PRIMARY KEY)", "INSERT INTO r SELECT generate_series(1, 10)")
    name = "retention"
    await take(target, store_url, name)
    for i in range(1, 5):
        await run(target, "SELECT * FROM r WHERE id = $1", repeat=i, args=(1,))
        await run(target, "SELECT count(*) FROM r")
        last = await take(target, store_url, name)

    conn = await asyncpg.connect(store_url)
    try:
        target_id = await conn.fetchval("SELECT target_id FROM pgpulse_history.target WHERE name = $1", name)
        totals_sql = """SELECT p.series_id, sum(p.calls) AS calls, sum(p.total_exec_time) AS time,
                               max(p.cum_calls) AS cum, count(*) AS n, array_agg(p.bucket_end) AS ends
                        FROM pgpulse_history.statement_point p JOIN pgpulse_history.statement_series s USING (series_id)
                        WHERE s.target_id = $1 GROUP BY 1 ORDER BY 1"""
        before = {r["series_id"]: r for r in await conn.fetch(totals_sql, target_id)}
        assert before[next(iter(before))]["n"] >= 1
        lookup = [p for p in await statement_points(store_url, name, "SELECT * FROM r WHERE id = $1")]
        assert [p["calls"] for p in lookup] == [1, 2, 3, 4]

        # Three days on, every raw point is past "raw:2d": each series keeps one point per hour bucket.
        policy = Policy.parse("raw:2d,1h:30d,1d:365d")
        result = await apply_retention(conn, target_id, policy, now=last.taken_at + timedelta(days=3))
        assert result.rolled["statement_point"] == sum(r["n"] for r in before.values())
        after = {r["series_id"]: r for r in await conn.fetch(totals_sql, target_id)}
        assert after.keys() == before.keys()
        for sid, b in before.items():
            a = after[sid]
            assert a["calls"] == b["calls"] and a["cum"] == b["cum"]
            assert a["time"] == pytest.approx(b["time"], rel=1e-12)
            assert a["n"] == len({floor_to(e, timedelta(hours=1)) for e in b["ends"]})
        resolutions = await conn.fetch(
            """SELECT DISTINCT p.resolution_s FROM pgpulse_history.statement_point p
               JOIN pgpulse_history.statement_series s USING (series_id) WHERE s.target_id = $1""",
            target_id,
        )
        assert [r["resolution_s"] for r in resolutions] == [3600]

        # Forty days on: hourly points roll into days, sums unchanged.
        await apply_retention(conn, target_id, policy, now=last.taken_at + timedelta(days=40))
        daily = {r["series_id"]: r for r in await conn.fetch(totals_sql, target_id)}
        for sid, b in before.items():
            assert daily[sid]["calls"] == b["calls"] and daily[sid]["cum"] == b["cum"]
            assert daily[sid]["n"] == len({floor_to(e, timedelta(days=1)) for e in b["ends"]})

        # Past the horizon everything goes, except the latest snapshot (the next delta needs it).
        gone = await apply_retention(conn, target_id, policy, now=last.taken_at + timedelta(days=400))
        assert gone.deleted["statement_point"] == sum(r["n"] for r in daily.values())
        left = await conn.fetchval("SELECT count(*) FROM pgpulse_history.snapshot WHERE target_id = $1", target_id)
        assert left == 1
    finally:
        await conn.close()
    assert ORIGIN.tzinfo is not None


async def test_snapshot_session_is_read_only_and_leaves_the_target_unchanged(
    make_database: MakeDatabase, store_url: str
) -> None:
    target = await make_database("hro", extensions=("pg_stat_statements",))
    await run(target, "CREATE TABLE keep (id int PRIMARY KEY, v text)", "INSERT INTO keep VALUES (1, 'a'), (2, 'b')")
    await wait_stat(target, "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'keep'", 2)
    state_sql = """SELECT (SELECT count(*) FROM pg_class WHERE relnamespace NOT IN
                            (SELECT oid FROM pg_namespace WHERE nspname LIKE 'pg\\_%'
                             OR nspname = 'information_schema')),
                          (SELECT count(*) FROM pg_namespace), (SELECT string_agg(id || v, ',' ORDER BY id) FROM keep),
                          (SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 'keep')"""
    conn = await asyncpg.connect(target)
    try:
        before = tuple(await conn.fetchrow(state_sql))
        await take(target, store_url, "read-only")
        await take(target, store_url, "read-only")
        after = tuple(await conn.fetchrow(state_sql))
    finally:
        await conn.close()
    assert after == before

    session = await connect_read_only(target)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await session.execute("CREATE TABLE pgpulse_was_here (id int)")
        assert await session.fetchval("SHOW statement_timeout") == "30s"
        assert await session.fetchval("SHOW lock_timeout") == "2s"
    finally:
        await session.close()


async def test_store_writes_are_left_out_when_the_store_is_the_target(make_database: MakeDatabase) -> None:
    both = await make_database("hself", extensions=("pg_stat_statements",))
    await run(both, "CREATE TABLE app (id int)")
    await take(both, both, "self")
    await run(both, "SELECT count(*) FROM app WHERE id = $1", repeat=2, args=(1,))
    await take(both, both, "self")
    await take(both, both, "self")
    conn = await asyncpg.connect(both)
    try:
        queries = [r["query"] for r in await conn.fetch("SELECT query FROM pgpulse_history.statement_series")]
        relations = [r["relname"] for r in await conn.fetch("SELECT relname FROM pgpulse_history.relation_series")]
    finally:
        await conn.close()
    assert not [q for q in queries if "pgpulse" in q], queries
    assert "app" in relations and not [r for r in relations if r in {"snapshot", "statement_point", "target"}]


async def test_a_statement_evicted_and_back_counts_from_zero(make_database: MakeDatabase, store_url: str) -> None:
    target = await make_database("hchurn", extensions=("pg_stat_statements",))
    await run(target, "CREATE TABLE churned (id int)")
    query = "SELECT count(*) FROM churned WHERE id = $1"
    await take(target, store_url, "churn")
    await run(target, query, repeat=5, args=(1,))
    await take(target, store_url, "churn")
    # Evict only this entry (as pg_stat_statements does when it is full), snapshot without it, then it comes back
    # and runs more often than before: a plain difference would say 8 - 5 = 3.
    await run(
        target, "SELECT pg_stat_statements_reset(0, 0, queryid) FROM pg_stat_statements WHERE query = $1", args=(query,)
    )
    await take(target, store_url, "churn")
    await run(target, query, repeat=8, args=(1,))
    await take(target, store_url, "churn")
    points = await statement_points(store_url, "churn", query)
    assert [(p["calls"], p["from_zero"], p["cum_calls"]) for p in points] == [(5, True, 5), (8, True, 13)]


async def test_pg_stat_statements_installed_later_starts_from_its_current_counts(
    make_database: MakeDatabase, store_url: str
) -> None:
    target = await make_database("hlate")  # the library is preloaded, the extension not created yet
    await run(target, "CREATE TABLE late (id int)")
    query = "SELECT count(*) FROM late WHERE id = $1"
    first = await take(target, store_url, "late")
    assert first.series["statement"] == 0
    await run(target, query, repeat=4, args=(1,))
    await run(target, "CREATE EXTENSION pg_stat_statements")
    # Its entries predate the extension (calls = 4): they are origins, not 4 calls in this interval.
    back = await take(target, store_url, "late")
    assert back.points["statement"] == 0 and back.series["statement"] > 0
    await run(target, query, repeat=2, args=(1,))
    await take(target, store_url, "late")
    points = await statement_points(store_url, "late", query)
    assert [(p["calls"], p["cum_calls"]) for p in points] == [(2, 2)]
