"""Does the index the advisor proposes make the seed query ≥ 100× faster for a hot user on 1,000,000 posts?

The "before" is what most schemas have: an index on the foreign key ``posts(user_id)`` only. The advisor reads
the seed query, proposes its index (verified by a rolled-back build: this server is throw-away), ``--apply``
creates it, and the query is timed for the hottest user without and with it, alternating over rounds (the
advised index is dropped and rebuilt between rounds) so machine noise hits both sides alike.

    python -m pgpulse.bench.advisor_speedup [--posts 1000000] [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

from pgpulse.advisor.advise import Advisor, Options
from pgpulse.advisor.apply import apply
from pgpulse.advisor.verify import Verifier
from pgpulse.advisor.workload import Source, WorkloadQuery
from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import ephemeral_server
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedSpec, seed
from pgpulse.doctor.runner import connect
from pgpulse.errors import PgPulseError
from pgpulse.stats import percentile

SEED_SQL = "SELECT * FROM posts WHERE user_id = $1 AND status = 'published' ORDER BY created_at DESC LIMIT 10"


@dataclass
class Side:
    median_ms: float
    p95_ms: float
    server_ms: float  # EXPLAIN ANALYZE execution time (median): the server's share
    plan: str


@dataclass
class AdvisorSpeedup:
    posts: int
    hot_user_posts: int
    advised: str
    cost_factor: float
    rounds: list[dict[str, Side]] = field(default_factory=list)
    before: Side | None = None
    after: Side | None = None
    speedup: float = 0.0
    seconds: float = 0.0


async def _time(conn: asyncpg.Connection, user_id: int, repeats: int) -> Side:
    stmt = await conn.prepare(SEED_SQL)
    for _ in range(3):
        await stmt.fetch(user_id)
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        await stmt.fetch(user_id)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    server = []
    plan = ""
    for _ in range(5):
        doc = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {SEED_SQL.replace('$1', str(user_id))}"))
        server.append(float(doc[0]["Execution Time"]))
        node = doc[0]["Plan"]
        while node.get("Plans") and "Index Name" not in node and node["Node Type"] not in ("Seq Scan",):
            node = node["Plans"][0]
        plan = f"{node['Node Type']}" + (f" using {node['Index Name']}" if "Index Name" in node else "")
    return Side(
        round(statistics.median(samples), 3),
        round(percentile(samples, 95), 3),
        round(statistics.median(server), 3),
        plan,
    )


async def measure(url: str, posts: int, rounds: int) -> AdvisorSpeedup:
    began = time.perf_counter()
    await upgrade_async(url)
    seeded = await seed(url, SeedSpec(users=10_000, posts=posts, comments_per_post=0.2, hot_users=5, hot_share=0.3))
    hot = seeded.hot_user_ids[0]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP INDEX ix_posts_user_status_created; CREATE INDEX ix_posts_user_id ON posts (user_id)")
        await conn.execute("ANALYZE posts")
        hot_posts = int(await conn.fetchval("SELECT count(*) FROM posts WHERE user_id = $1", hot))
    finally:
        await conn.close()

    ro, _ = await connect(url)
    try:
        await ro.execute("SET statement_timeout = '10min'")
        verifier = await Verifier.create(ro, allow_build=True)
        advice = await Advisor(ro, verifier, Options(), lambda _: None).run([WorkloadQuery(SEED_SQL, Source.argument)])
    finally:
        await ro.close()
    if not advice.recommendations:
        raise PgPulseError(f"the advisor proposed nothing: {advice.verdicts[0].reason}")
    rec = advice.recommendations[0]
    result = AdvisorSpeedup(
        posts=seeded.posts,
        hot_user_posts=hot_posts,
        advised=rec.create_sql,
        cost_factor=round(rec.verdicts[0].factor or 0, 1),
    )
    conn = await asyncpg.connect(url)
    try:
        for _ in range(rounds):
            await conn.execute(f'DROP INDEX IF EXISTS "{rec.candidate.name}"')
            before = await _time(conn, hot, repeats=20)
            applied = await apply(url, [rec], lock_timeout_ms=5_000)
            if not applied[0].ok:
                raise PgPulseError(f"--apply failed: {applied[0].message}")
            await conn.execute("ANALYZE posts")
            after = await _time(conn, hot, repeats=300)
            result.rounds.append({"before": before, "after": after})
    finally:
        await conn.close()
    result.before = _median_side([r["before"] for r in result.rounds])
    result.after = _median_side([r["after"] for r in result.rounds])
    result.speedup = round(result.before.median_ms / result.after.median_ms, 1)
    result.seconds = round(time.perf_counter() - began, 1)
    return result


def _median_side(sides: list[Side]) -> Side:
    return Side(
        round(statistics.median(s.median_ms for s in sides), 3),
        round(statistics.median(s.p95_ms for s in sides), 3),
        round(statistics.median(s.server_ms for s in sides), 3),
        sides[-1].plan,
    )


def run(posts: int = 1_000_000, rounds: int = 3) -> AdvisorSpeedup:
    with ephemeral_server(fast=True) as server:

        async def go() -> AdvisorSpeedup:
            return await measure(await create_database(server.url(), "citizen"), posts, rounds)

        return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    args = parser.parse_args()
    result = run(args.posts, args.rounds)
    assert result.before is not None and result.after is not None
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    print(f"advised: {result.advised} (planner cost {result.cost_factor}× lower)")
    print(
        f"seed query, hot user ({result.hot_user_posts:,} of {result.posts:,} posts), median over {len(result.rounds)} "
        f"rounds:\n  before (user_id) only: {result.before.median_ms:.2f} ms p50, {result.before.p95_ms:.2f} ms p95, "
        f"server {result.before.server_ms:.2f} ms [{result.before.plan}]\n  after advised index: "
        f"{result.after.median_ms:.3f} ms p50, {result.after.p95_ms:.3f} ms p95, "
        f"server {result.after.server_ms:.3f} ms [{result.after.plan}]\n"
        f"  speed-up: {result.speedup:,.0f}× (target ≥ 100×); server-side "
        f"{result.before.server_ms / max(result.after.server_ms, 0.001):,.0f}×"
    )


if __name__ == "__main__":
    main()
