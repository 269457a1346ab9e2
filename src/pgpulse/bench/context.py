"""What every pair shares: the sizes of a quick or a full run, the seeded CitizenApp database, machine facts.

All pairs run on one freshly created database (dropped at the end) so that before and after always see the
same rows, the same statistics and the same cache state.
"""

from __future__ import annotations

import os
import platform
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from pgpulse.db.databases import create_database
from pgpulse.db.urls import async_url, libpq_url
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedSpec, seed
from pgpulse.sql.quote import quote_ident


@dataclass(frozen=True)
class Sizes:
    """Data sizes and time budgets; ``quick`` is the CI smoke (< 3 min), ``full`` the < 20 min run."""

    users: int
    posts: int
    comments_per_post: float
    http_seconds: float  # one timed round of the load generator
    http_warmup: float
    rounds: int
    profiler_rounds: int
    query_budget_s: float  # per variant, for in-process query loops
    overindex_rows: int
    bloat_rows: int
    stale_rows: int
    listener_calls: int

    @classmethod
    def quick(cls) -> Sizes:
        return cls(500, 30_000, 1.0, 1.0, 0.3, 2, 4, 0.6, 2_000, 20_000, 100_000, 20_000)

    @classmethod
    def full(cls) -> Sizes:
        return cls(10_000, 1_000_000, 1.0, 4.0, 1.0, 3, 20, 3.0, 20_000, 200_000, 1_000_000, 200_000)


@dataclass
class BenchData:
    maintenance_url: str  # libpq DSN of a database we may CREATE DATABASE from
    database: str
    url: str  # libpq DSN of the bench database
    showcase_user_id: int
    hot_user_id: int
    plain_user_id: int  # an ordinary user with a handful of posts (single-row endpoint)
    posts: int
    comments: int
    seed_seconds: float

    @property
    def sqlalchemy_url(self) -> str:
        return async_url(self.url).render_as_string(hide_password=False)


@dataclass
class BenchContext:
    sizes: Sizes
    quick: bool
    data: BenchData
    machine: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        d = asdict(self.data)
        d.pop("maintenance_url")
        d.pop("url")
        return d


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def machine_facts(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        version = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "postgresql": version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


async def create_bench_data(maintenance_url: str, sizes: Sizes) -> BenchData:
    """Create, migrate and seed a fresh database; raises asyncpg/OS errors for the caller to report."""
    maintenance_url = libpq_url(maintenance_url)
    name = f"pgpulse_bench_{uuid.uuid4().hex[:8]}"
    url = await create_database(maintenance_url, name)
    began = time.perf_counter()
    await upgrade_async(url)
    result = await seed(url, SeedSpec(users=sizes.users, posts=sizes.posts, comments_per_post=sizes.comments_per_post))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE) users, posts, comments")  # visibility map: index-only scans work
        plain = await conn.fetchval(
            "SELECT user_id FROM posts GROUP BY user_id HAVING count(*) BETWEEN 1 AND 20 ORDER BY user_id LIMIT 1"
        )
    finally:
        await conn.close()
    assert result.showcase_user_id is not None
    return BenchData(
        maintenance_url=maintenance_url,
        database=name,
        url=url,
        showcase_user_id=result.showcase_user_id,
        hot_user_id=result.hot_user_ids[0],
        plain_user_id=int(plain or result.showcase_user_id),
        posts=result.posts,
        comments=result.comments,
        seed_seconds=round(time.perf_counter() - began, 1),
    )


async def drop_bench_data(data: BenchData) -> None:
    conn = await asyncpg.connect(data.maintenance_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(data.database)} WITH (FORCE)")
    finally:
        await conn.close()
