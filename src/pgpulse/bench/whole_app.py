"""Pair 7 — the whole app: one fixed, realistic request mix against CitizenApp untuned, then tuned step by step
with what pgpulse itself finds on the untuned app.

Untuned is how many apps start: lazy loading (``strategy=lazy``), NullPool, only primary keys (the migration's
secondary indexes dropped; the unique index on ``lower(email)`` stays, it is a constraint, not a tuning), no
ANALYZE after the bulk load (statistics from a table 1/16 of its size), default autovacuum (the migration's
per-table settings reset). The pair runs on its own database, created and dropped here, so nothing it changes
reaches the other pairs.

The tuned direction, one fix at a time, each measured with the same mix:

1. the profiler's N+1 finding on the feed (run in-process on the untuned app) → eager loading;
2. the profiler's new-connection-per-request finding (NullPool: every request forks a backend) → QueuePool;
3. ``pgpulse doctor``'s findings on the untuned database: stale statistics → ANALYZE, autovacuum settings;
4. ``pgpulse advise`` (its library API) on the workload pg_stat_statements recorded, ``--apply``.

Per step: latency percentiles and throughput from the load generator; the app's CPU per request (its process);
the database's CPU per request (the postmaster and all its children, exited backends included: NullPool's
backends live for one request); PostgreSQL's execution time and shared-buffer hits/reads per request from
pg_stat_statements (reset before each step).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import psutil

from pgpulse.advisor.advise import Advisor
from pgpulse.advisor.advise import Options as AdviseOptions
from pgpulse.advisor.apply import apply
from pgpulse.advisor.verify import Verifier
from pgpulse.advisor.workload import from_pg_stat_statements
from pgpulse.bench import cpu
from pgpulse.bench.appserver import asgi_get, serve_app
from pgpulse.bench.context import BenchContext
from pgpulse.bench.loadgen import LoadResult, run_load
from pgpulse.bench.stats import PairResult, Target, Variant, ratio, summarize
from pgpulse.db.databases import create_database
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedSpec, seed
from pgpulse.doctor.check import Finding
from pgpulse.doctor.runner import connect, run_checks
from pgpulse.sql import one_statement, quote_ident

CONCURRENCY = 16
DOUBLINGS = 4  # the bulk load after the (analyzed) seed: 2**4 = 16x the rows the statistics describe
SECONDARY_INDEXES = ("ix_posts_user_status_created", "ix_comments_post_id")
AUTOVACUUM_OPTIONS = "autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor"
Mix = list[tuple[str, str, Any]]
# The doctor's findings about this database's tables (its settings and top-queries findings are server-wide).
ACTIONABLE = ("missing_indexes", "foreign_key_indexes", "stale_statistics", "vacuum", "connections")

# The load after the seed, in SQL: each pass copies every post (new ids) with its comments. No ANALYZE follows.
DOUBLE_POSTS = """
INSERT INTO posts (id, user_id, title, body, status, created_at)
SELECT id + $1, user_id, title, body, status, created_at + interval '1 day' FROM posts
"""
DOUBLE_COMMENTS = """
INSERT INTO comments (id, post_id, user_id, text, created_at)
SELECT id + $1, post_id + $2, user_id, text, created_at + interval '1 day' FROM comments
"""
TYPICAL_USERS = """
SELECT user_id FROM posts GROUP BY user_id HAVING count(*) BETWEEN 5 AND 20 ORDER BY user_id LIMIT 6
"""
PGSS_TOTALS = """
SELECT coalesce(sum(calls), 0)::bigint AS calls, coalesce(sum(total_exec_time), 0)::float8 AS exec_ms,
       coalesce(sum(shared_blks_hit), 0)::bigint AS hit, coalesce(sum(shared_blks_read), 0)::bigint AS read
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass(frozen=True)
class Ids:
    typical: list[int]
    hot: int
    posts: list[int]  # posts of typical users, to comment on


@dataclass(frozen=True)
class Step:
    name: str
    env: dict[str, str]
    strategy: str
    because: str  # the finding that led to it


def mix(ids: Ids, strategy: str) -> Mix:
    """20 requests, cycled by every load-generator worker: 30 % feeds, 25 % published-posts lists (hot user
    3 of 5), 25 % user look-ups, 10 % new posts, 10 % new comments."""
    t, p = ids.typical, ids.posts
    feeds = [("GET", f"/users/{t[i % len(t)]}/posts?strategy={strategy}", None) for i in range(6)]
    published = [("GET", f"/users/{ids.hot}/posts/published?limit=10", None)] * 3 + [
        ("GET", f"/users/{t[i % len(t)]}/posts/published?limit=10", None) for i in range(2)
    ]
    lookups = [("GET", f"/users/{t[(i + 3) % len(t)]}", None) for i in range(5)]
    new_posts = [
        ("POST", "/posts", {"user_id": t[i % len(t)], "title": "bench post", "body": "x" * 200, "status": "published"})
        for i in range(2)
    ]
    new_comments = [
        ("POST", "/comments", {"post_id": p[i % len(p)], "user_id": t[(i + 1) % len(t)], "text": "bench comment"})
        for i in range(2)
    ]
    # interleaved, so a burst of one kind never lines up across workers
    kinds: list[Mix] = [feeds, published, lookups, new_posts, new_comments]
    out: Mix = []
    while any(kinds):
        for kind in kinds:
            if kind:
                out.append(kind.pop(0))
    return out


async def create_untuned(maintenance_url: str, name: str, quick: bool) -> tuple[str, Ids]:
    """Migrate, strip to primary keys, seed (analyzed), then load 15/16 of the rows with no ANALYZE after."""
    url = await create_database(maintenance_url, name)
    await upgrade_async(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for index in SECONDARY_INDEXES:
            await conn.execute(f"DROP INDEX IF EXISTS {quote_ident(index)}")
        for table in ("users", "posts", "comments"):
            await conn.execute(f"ALTER TABLE {quote_ident(table)} RESET ({AUTOVACUUM_OPTIONS})")
    finally:
        await conn.close()
    base = 1_000 if quick else 15_000
    result = await seed(url, SeedSpec(users=base, posts=base, comments_per_post=1.0, showcase=False))
    conn = await asyncpg.connect(url)
    try:
        for _ in range(DOUBLINGS):
            top_post = int(await conn.fetchval("SELECT max(id) FROM posts"))
            top_comment = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM comments"))
            await conn.execute(DOUBLE_POSTS, top_post)
            await conn.execute(DOUBLE_COMMENTS, top_comment, top_post)
        for table in ("posts", "comments"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        typical = [int(r["user_id"]) for r in await conn.fetch(TYPICAL_USERS)]
        posts = [
            int(r["id"])
            for r in await conn.fetch("SELECT id FROM posts WHERE user_id = ANY($1::bigint[]) LIMIT 6", typical)
        ]
    finally:
        await conn.close()
    return url, Ids(typical=typical or [result.hot_user_ids[-1]], hot=result.hot_user_ids[0], posts=posts)


async def measure(
    url: str, step: Step, requests: Mix, rounds: int, seconds: float, warmup: float, postmaster: psutil.Process | None
) -> Variant:
    async with serve_app(step.name, url, {**step.env, "PGPULSE_PROFILER_ENABLED": "false"}) as app:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_stat_statements_reset()")
            app_cpu0, db_cpu0 = cpu.process_seconds(app.process.pid), cpu.server_seconds(postmaster)
            results: list[LoadResult] = []
            for _ in range(rounds):
                results.append(
                    await run_load(app.port, "", CONCURRENCY, seconds, warmup, mix=requests, min_requests=CONCURRENCY)
                )
            app_cpu1, db_cpu1 = cpu.process_seconds(app.process.pid), cpu.server_seconds(postmaster)
            totals = await conn.fetchrow(PGSS_TOTALS)
        finally:
            await conn.close()
    variant = summarize("app", step.name, [r.round for r in results], concurrency=CONCURRENCY)
    served = sum(r.total for r in results) or 1  # warm-up included: the CPU was spent on those too
    statuses: dict[str, int] = {}
    for r in results:
        for k, n in r.statuses.items():
            statuses[k] = statuses.get(k, 0) + n
    variant.extra.update(
        server_cpu_ms=None if app_cpu0 is None or app_cpu1 is None else round((app_cpu1 - app_cpu0) / served * 1000, 3),
        db_cpu_ms=None if db_cpu0 is None or db_cpu1 is None else round((db_cpu1 - db_cpu0) / served * 1000, 3),
        db_exec_ms=round(float(totals["exec_ms"]) / served, 3),
        queries_per_request=round(int(totals["calls"]) / served, 2),
        blks_hit=round(int(totals["hit"]) / served, 1),
        blks_read=round(int(totals["read"]) / served, 1),
        statuses=statuses,
        because=step.because,
    )
    return variant


async def profiler_findings(url: str, path: str) -> list[str]:
    """The profiler's findings for ``path`` on the untuned app (its N+1s, then its new connections per request),
    each as its description + fix."""
    from pgpulse.db.urls import async_url
    from pgpulse.demo.app import create_app
    from pgpulse.profiler.context import Record
    from pgpulse.settings import Settings

    found: list[str] = []

    def hook(record: Record) -> None:
        found.extend(f.describe() for f in record.findings)
        found.extend(f.describe() for f in record.connections)

    settings = Settings(pool="null", profiler_enabled=True)
    app = create_app(async_url(url).render_as_string(hide_password=False), settings, on_record=hook)
    try:
        await asgi_get(app, path)
    finally:
        await app.state.engine.dispose()
    return found


def _doctor_fix_statements(findings: list[Finding]) -> list[str]:
    """The SQL the doctor proposes for stale statistics and autovacuum, one checked statement each."""
    statements: list[str] = []
    for f in findings:
        if f.check not in ("stale_statistics", "vacuum") or not f.fix:
            continue
        for part in f.fix.split(";"):
            sql = part.strip()
            if sql and sql.split()[0].upper() in ("ANALYZE", "ALTER"):
                statements.append(sql)
    return statements


async def doctor_step(url: str, log: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """Run the doctor on the untuned database: every finding's title, and the fixes this pair applies."""
    report = await run_checks(url)
    titles = [f"{f.check}: {f.title}" for f in report.findings if f.check in ACTIONABLE]
    fixes = _doctor_fix_statements(report.findings)
    for t in titles:
        log(t)
    return titles, fixes


async def apply_fixes(url: str, statements: list[str]) -> None:
    from pglast import ast

    conn = await asyncpg.connect(url)
    try:
        for sql in statements:
            one_statement(sql, (ast.VacuumStmt, ast.AlterTableStmt))  # ANALYZE parses as a VacuumStmt
            await conn.execute(sql)
    finally:
        await conn.close()


async def advise_and_apply(url: str) -> list[str]:
    """``pgpulse advise --apply`` through its library API: workload from pg_stat_statements, rolled-back
    builds (the embedded server has no HypoPG; this database is the pair's own), then CREATE INDEX."""
    conn, _ = await connect(url)
    try:
        await conn.execute("SET statement_timeout = '10min'")
        workload = await from_pg_stat_statements(conn, 20, 1)
        verifier = await Verifier.create(conn, True)
        advice = await Advisor(conn, verifier, AdviseOptions(), lambda _: None).run(workload) if workload else None
    finally:
        await conn.close()
    if advice is None or not advice.recommendations:
        return []
    # the pair's own database: a generous lock timeout, so a backend of the last step still closing on a busy
    # machine (CREATE INDEX CONCURRENTLY waits for every transaction of the database) does not fail the build
    applied = await apply(url, advice.recommendations, 60_000)
    return [
        f"{rec.create_sql} ({'created' if a.ok else a.message})"
        for rec, a in zip(advice.recommendations, applied, strict=False)
    ]


async def run(ctx: BenchContext) -> PairResult:
    pair = PairResult("app", f"Whole app: a fixed request mix at c={CONCURRENCY}, untuned → tuned step by step")
    quick = ctx.quick
    rounds, seconds, warmup = (1, 1.0, 0.3) if quick else (3, 4.0, 1.0)
    name = f"{ctx.data.database}_app"
    url, ids = await create_untuned(ctx.data.maintenance_url, name, quick)
    try:
        await _run_steps(ctx, pair, url, ids, rounds, seconds, warmup)
    finally:
        conn = await asyncpg.connect(ctx.data.maintenance_url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        finally:
            await conn.close()
    return pair


async def _run_steps(
    ctx: BenchContext, pair: PairResult, url: str, ids: Ids, rounds: int, seconds: float, warmup: float
) -> None:
    postmaster = await cpu.postmaster_of(url)
    null, queue = {"PGPULSE_POOL": "null"}, {"PGPULSE_POOL": "queue"}
    feed = f"/users/{ids.typical[0]}/posts?strategy=lazy"
    found = await profiler_findings(url, feed)
    nplusone = [f for f in found if f.startswith("N+1")]
    no_pool = [f for f in found if not f.startswith("N+1")]
    doctor_titles, doctor_fixes = await doctor_step(url, lambda _: None)

    async def step(s: Step) -> None:
        pair.variants.append(await measure(url, s, mix(ids, s.strategy), rounds, seconds, warmup, postmaster))

    await step(Step("untuned", null, "lazy", "lazy loading, NullPool, primary keys only, stale statistics"))
    eager_because = f"profiler: {nplusone[0].splitlines()[0]}" if nplusone else "profiler: no N+1 reported"
    await step(Step("+ eager loading", null, "selectin", eager_because))
    pool_because = f"profiler: {no_pool[0].splitlines()[0]}" if no_pool else "profiler: no new-connection finding"
    await step(Step("+ QueuePool", queue, "selectin", pool_because))
    await apply_fixes(url, doctor_fixes)
    await step(Step("+ doctor: ANALYZE, autovacuum", queue, "selectin", "doctor: " + "; ".join(doctor_fixes)))
    created = await advise_and_apply(url)
    await step(Step("+ advise --apply", queue, "selectin", "advise: " + "; ".join(created)))

    v = pair.variants
    first, last = v[0], v[-1]
    pair.ratios = {
        "tuned/untuned throughput": ratio(last.throughput, first.throughput),
        "tuned/untuned p95": ratio(last.p95_ms, first.p95_ms),
        "tuned/untuned database CPU per request": ratio(
            last.extra["db_cpu_ms"] or 0.0, first.extra["db_cpu_ms"] or 0.0
        ),
        "tuned/untuned buffer reads+hits per request": ratio(
            last.extra["blks_hit"] + last.extra["blks_read"], first.extra["blks_hit"] + first.extra["blks_read"]
        ),
    }
    for before, after in itertools.pairwise(v):
        pair.ratios[f"{after.name}: p95 vs previous step"] = ratio(after.p95_ms, before.p95_ms)
    pair.targets = [
        Target("whole app tuned p95 ≤ 1/10 of untuned", pair.ratios["tuned/untuned p95"], 0.1, "<="),
        Target(
            "whole app tuned database CPU per request ≤ 60 % of untuned",
            pair.ratios["tuned/untuned database CPU per request"],
            0.6,
            "<=",
        ),
    ]
    pair.facts.update(
        mix=[f"{m} {p}" for m, p, _ in mix(ids, "selectin")],
        profiler_findings=nplusone,
        profiler_connection_findings=no_pool,
        doctor_findings=doctor_titles,
        doctor_fixes=doctor_fixes,
        advised=created,
    )
    for variant in v:
        e = variant.extra
        pair.notes.append(
            f"{variant.name}: p50 {variant.p50_ms:.1f} / p95 {variant.p95_ms:.1f} / p99 {variant.p99_ms:.1f} ms, "
            f"{variant.throughput:.0f} req/s; per request: {e['queries_per_request']} queries, database CPU "
            f"{e['db_cpu_ms']} ms, PostgreSQL execution {e['db_exec_ms']} ms, shared buffers {e['blks_hit']:.0f} hit "
            f"+ {e['blks_read']:.0f} read, app CPU {e['server_cpu_ms']} ms; statuses {json.dumps(e['statuses'])}; "
            f"because {e['because']}"
        )
    pair.notes.append(f"doctor on the untuned database: {'; '.join(doctor_titles) or 'no findings'}")
