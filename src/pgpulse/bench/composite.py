"""Pair 2 — the composite index: the seed query for a hot user with no index, ``(user_id)``, and
``(user_id, status, created_at DESC)``, on the same rows (indexes built and dropped between variants).

``(user_id)`` alone finds the hot user's tens of thousands of posts, then filters on status and sorts them
all to return 10; the composite index hands back the first 10 rows in order and stops. The gap grows with
the hot user's post count, so it is measured on 1,000,000 posts in the full run.
"""

from __future__ import annotations

import json
from functools import partial

import asyncpg

from pgpulse.bench.context import BenchContext
from pgpulse.bench.rounds import interleaved_loops
from pgpulse.bench.stats import PairResult, Target, ratio, summarize

SEED_QUERY = (
    "SELECT id, user_id, title, status, created_at FROM posts "
    "WHERE user_id = $1 AND status = 'published' ORDER BY created_at DESC LIMIT 10"
)
MIGRATION_INDEX = "ix_posts_user_status_created"
VARIANTS = {
    "no secondary index": None,
    "(user_id)": "CREATE INDEX bench_posts_user ON posts (user_id)",
    "(user_id, status, created_at DESC)": (
        "CREATE INDEX bench_posts_composite ON posts (user_id, status, created_at DESC)"
    ),
}


def _plan_summary(plan_json: str) -> dict[str, object]:
    plan = json.loads(plan_json)[0]
    nodes: list[str] = []

    def walk(node: dict[str, object]) -> None:
        label = str(node["Node Type"])
        if "Index Name" in node:
            label += f" using {node['Index Name']}"
        nodes.append(label)
        for child in node.get("Plans", []):  # type: ignore[attr-defined]
            walk(child)

    walk(plan["Plan"])
    return {"plan": " → ".join(nodes), "execution_ms": plan["Execution Time"]}


async def run(ctx: BenchContext) -> PairResult:
    pair = PairResult("composite", "Composite index: the seed query for a hot user")
    hot = ctx.data.hot_user_id
    conn = await asyncpg.connect(ctx.data.url)
    try:
        hot_posts = int(await conn.fetchval("SELECT count(*) FROM posts WHERE user_id = $1", hot))
        pair.facts.update(posts=ctx.data.posts, hot_user_posts=hot_posts)
        await conn.execute(f"DROP INDEX IF EXISTS {MIGRATION_INDEX}")
        try:
            for name, ddl in VARIANTS.items():
                if ddl:
                    await conn.execute(ddl)
                await conn.execute("ANALYZE posts")
                stmt = await conn.prepare(SEED_QUERY)
                rows = await stmt.fetch(hot)
                plan = _plan_summary(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {SEED_QUERY}", hot))
                # Seq scans are slow: a fixed time budget gives fast variants thousands of samples, slow ones a few.
                loops = await interleaved_loops(
                    {name: partial(stmt.fetch, hot)}, ctx.sizes.rounds, ctx.sizes.query_budget_s
                )
                variant = summarize("composite", name, loops[name], unit="queries/s")
                variant.extra.update(plan, rows=len(rows))
                pair.variants.append(variant)
                if ddl:
                    await conn.execute(f"DROP INDEX {ddl.split()[2]}")
        finally:
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {MIGRATION_INDEX} ON posts (user_id, status, created_at DESC)"
            )
            await conn.execute("ANALYZE posts")
    finally:
        await conn.close()
    v = pair.variant
    speedup = ratio(v("(user_id)").p50_ms, v("(user_id, status, created_at DESC)").p50_ms)
    pair.ratios = {
        "composite speed-up vs (user_id) p50": speedup,
        "composite speed-up vs no index p50": ratio(
            v("no secondary index").p50_ms, v("(user_id, status, created_at DESC)").p50_ms
        ),
        "(user_id) speed-up vs no index p50": ratio(v("no secondary index").p50_ms, v("(user_id)").p50_ms),
    }
    pair.targets = [Target("composite ≥ 100× faster than (user_id) for the hot user (p50)", speedup, 100.0, ">=")]
    pair.notes.append(
        f"hot user {hot} owns {hot_posts:,} of {ctx.data.posts:,} posts; plans: "
        + "; ".join(f"{x.name}: {x.extra['plan']}" for x in pair.variants)
    )
    return pair
