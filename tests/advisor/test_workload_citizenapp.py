"""CitizenApp's own SQL, as SQLAlchemy + asyncpg send it, read back from pg_stat_statements and from the server
log and advised on: every query shape is read (typed parameters, expanded IN lists, LIMIT $n::INTEGER, correlated
subqueries in the select list) and gets a verdict, and the two indexes the app's migration creates — dropped
here first — are found again from the workload alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from pgpulse.db.databases import create_database
from pgpulse.demo.app import create_app
from pgpulse.demo.embedded import EmbeddedPostgres
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedSpec, seed

SPEC = SeedSpec(users=60, posts=3_000, comments_per_post=2.0, hot_users=2, hot_share=0.4)
DATABASE = "citizen_advise"
PUBLISHED = "/posts/published"


@dataclass
class CitizenWorkload:
    url: str
    log: Path  # the server log lines this app's requests wrote (log_min_duration_statement = 0)


async def _drive(app: Any, user_ids: list[int], post_id: int, hot: set[int]) -> None:
    """Every route, every loading strategy: the SQL the app sends in production (strategy=lazy is capped at 500
    posts by the app itself, so a hot user is read with the other two)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://citizen") as client:
            for user_id in user_ids:
                for strategy in ("selectin", "single") if user_id in hot else ("lazy", "selectin", "single"):
                    response = await client.get(f"/users/{user_id}/posts", params={"strategy": strategy})
                    assert response.status_code == 200, response.text
                response = await client.get(f"/users/{user_id}{PUBLISHED}", params={"limit": 5})
                assert response.status_code == 200, response.text
                assert (await client.get(f"/users/{user_id}")).status_code == 200
            created = await client.post(
                "/posts", json={"user_id": user_ids[0], "title": "t", "body": "b", "status": "draft"}
            )
            assert created.status_code == 201, created.text
            comment = await client.post("/comments", json={"post_id": post_id, "user_id": user_ids[0], "text": "c"})
            assert comment.status_code == 201, comment.text


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def citizen(hypo_server: EmbeddedPostgres, tmp_path_factory: Any) -> AsyncIterator[CitizenWorkload]:
    url = await create_database(hypo_server.url(), DATABASE, replace=True)
    await upgrade_async(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg; CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # The app's two lesson indexes, dropped: the advisor must find them again from the app's SQL alone.
        await conn.execute("DROP INDEX ix_posts_user_status_created; DROP INDEX ix_comments_post_id")
        seeded = await seed(url, SPEC)
        post_id = int(await conn.fetchval("SELECT min(id) FROM posts"))
        await conn.execute(
            "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)"
        )
        # the seed is a bulk load, not the app's writes: table statistics restart with the statements' window
        # (else 3,000 seeded posts would outweigh the few reads of this short drive, and rightly so)
        for _ in range(400):  # the seed's backends flush their table statistics as they exit: wait for them
            if await conn.fetchval("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'posts'") >= SPEC.posts:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("pg_stat_user_tables never showed the seeded posts")
        await conn.execute("SELECT pg_stat_reset()")
        await conn.execute(f"ALTER DATABASE {DATABASE} SET log_min_duration_statement = 0")
        start = hypo_server.log_path.stat().st_size
        users = [*seeded.hot_user_ids[:1], *[u for u in range(1, 6) if u not in seeded.hot_user_ids][:2]]
        await _drive(create_app(url), users, post_id, set(seeded.hot_user_ids))
        await conn.execute(f"ALTER DATABASE {DATABASE} RESET log_min_duration_statement")
    finally:
        await conn.close()
    lines = ""  # poll: the log holds the last request's statements once the server has written them
    for _ in range(200):
        with hypo_server.log_path.open("rb") as handle:
            handle.seek(start)
            lines = handle.read().decode("utf-8", "replace")
        if "INSERT INTO comments" in lines:
            break
        await asyncio.sleep(0.05)
    log = tmp_path_factory.mktemp("citizen-log") / "postgresql.log"
    log.write_text(lines)
    yield CitizenWorkload(url, log)


def _advice(advise: Any, *args: str) -> dict[str, Any]:
    code, out, err = advise(*args, "-f", "json", "--top", "100")
    assert code == 0, err
    return json.loads(out)


def _columns(doc: dict[str, Any]) -> dict[str, list[str]]:
    return {
        r["table"]: [c["name"] + (" DESC" if c["desc"] else "") for c in r["columns"]] for r in doc["recommendations"]
    }


EXPECTED = {"comments": ["post_id"], "posts": ["user_id", "status", "created_at DESC"]}  # the migration's keys
VERDICTS = {"improved", "covered", "no-gain"}


def _check(doc: dict[str, Any]) -> None:
    unread = [(q["status"], q["reason"], q["query"][:120]) for q in doc["queries"] if q["status"] not in VERDICTS]
    assert unread == []
    assert _columns(doc) == EXPECTED
    by_sql = {" ".join(q["query"].split()): q for q in doc["queries"]}
    published = next(q for sql, q in by_sql.items() if "status = $2::VARCHAR" in sql and "LIMIT $3::INTEGER" in sql)
    assert published["status"] == "improved" and published["index"] == "ix_posts_user_id_status_created_at"
    # the lazy strategy's per-post query, and the raw-SQL strategy's correlated subqueries in the select list
    lazy = next(q for sql, q in by_sql.items() if "WHERE $1::BIGINT = comments.post_id" in sql)
    assert lazy["status"] == "improved" and lazy["index"] == "ix_comments_post_id"
    single = next(q for sql, q in by_sql.items() if sql.startswith("SELECT json_build_object("))
    assert single["status"] == "improved" and single["index"] == "ix_comments_post_id"
    for rec in doc["recommendations"]:  # the planner's plan named the index for every query it is advised for
        assert all(rec["name"] in q["indexes"] for q in rec["queries"])


def test_pg_stat_statements_workload_is_read_whole(citizen: CitizenWorkload, advise: Any) -> None:
    doc = _advice(advise, citizen.url)
    assert {q["source"] for q in doc["queries"]} == {"pg_stat_statements"}
    assert len(doc["queries"]) >= 10  # every route's statements (lazy, selectin, single, published, get, create)
    _check(doc)
    # selectin's batch as asyncpg sends it: one shape per list length in pg_stat_statements (PostgreSQL 15)
    by_sql = {" ".join(q["query"].split()): q for q in doc["queries"]}
    batch = [q for sql, q in by_sql.items() if "comments.post_id IN ($1::BIGINT, $2::BIGINT, $3::BIGINT)" in sql]
    assert [q["index"] for q in batch] == ["ix_comments_post_id"]


def test_server_log_workload_is_read_whole(citizen: CitizenWorkload, advise: Any) -> None:
    doc = _advice(advise, citizen.url, "--log", str(citizen.log))
    assert {q["source"] for q in doc["queries"]} == {"log"}
    assert len(doc["queries"]) >= 9  # as above, less one: the log reader folds IN lists of any length into one
    _check(doc)  # BEGIN/COMMIT/SHOW/INSERT … VALUES in the log are noise, left out of the report
