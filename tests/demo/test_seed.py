"""The generator: the counts asked for, the skew that makes the hot-user case real, statistics in place."""

from __future__ import annotations

import asyncpg

from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedSpec, seed


async def test_seed_counts_skew_status_mix_and_analyze(make_database) -> None:  # type: ignore[no-untyped-def]
    url = await make_database("seed")
    await upgrade_async(url)
    calls: list[tuple[str, int, int]] = []
    spec = SeedSpec(users=200, posts=20_000, comments_per_post=1.0, hot_users=3, hot_share=0.3)
    result = await seed(url, spec, progress=lambda t, d, n: calls.append((t, d, n)))
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 201 == result.users
        assert await conn.fetchval("SELECT count(*) FROM posts") == 20_050 == result.posts
        assert await conn.fetchval("SELECT count(*) FROM comments") == result.comments
        hot = await conn.fetchval("SELECT count(*) FROM posts WHERE user_id = $1", result.hot_user_ids[0])
        median = await conn.fetchval(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY n) FROM "
            "(SELECT count(*) AS n FROM posts GROUP BY user_id) s"
        )
        assert hot == 2_000 and hot > 20 * median
        published = await conn.fetchval("SELECT avg((status = 'published')::int) FROM posts")
        assert 0.57 < float(published) < 0.63
        analyzed = await conn.fetch("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")
        assert {r["relname"] for r in analyzed} >= {"users", "posts", "comments"}
        # sequences follow the copied ids: a normal insert after seeding does not collide
        await conn.execute("INSERT INTO users (name, email) VALUES ('n', 'new@example.org')")
    finally:
        await conn.close()
    assert calls and calls[-1][0] == "comments"
    # seeding again with reset gives the same data (deterministic generator)
    again = await seed(url, spec)
    assert (again.posts, again.comments) == (result.posts, result.comments)
