"""Realistic CitizenApp data, fast: skewed post counts, 60 % published, bulk loaded with COPY, then ANALYZE.

Skew matters: a uniform dataset hides the hot-user case where ``(user_id)`` alone still leaves thousands of
rows to filter and sort, which is exactly where the composite index pays off. The first ``hot_users`` users
get ``hot_share`` of all posts; the rest are spread over everybody else.

COPY through asyncpg's binary protocol loads about a million posts in seconds; ORM inserts would take
minutes. ANALYZE afterwards is not optional: autovacuum would get to it eventually, but until then the
planner works on statistics of an empty table.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from pgpulse.db.urls import libpq_url

STATUS_WEIGHTS = (("published", 0.6), ("draft", 0.3), ("archived", 0.1))
CHUNK = 50_000
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = [
    "index", "vacuum", "pool", "query", "plan", "cost", "scan", "join", "row",
    "page", "cache", "lock", "commit", "latency", "tuple", "buffer", "replica",
]  # fmt: skip

Progress = Callable[[str, int, int], None]  # (table, rows done, rows total)


@dataclass(frozen=True)
class SeedSpec:
    users: int = 1_000
    posts: int = 20_000
    comments_per_post: float = 3.0
    hot_users: int = 5
    hot_share: float = 0.3
    showcase: bool = True  # one extra user with exactly 50 posts x 10 comments (the benchmark's subject)
    random_seed: int = 42


@dataclass
class SeedResult:
    users: int = 0
    posts: int = 0
    comments: int = 0
    hot_user_ids: list[int] = field(default_factory=list)
    showcase_user_id: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


SHOWCASE_POSTS, SHOWCASE_COMMENTS = 50, 10
PHRASES = 4096


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _phrases(rng: random.Random, words: int, count: int = PHRASES) -> list[str]:
    """A pool of sentences to draw row texts from: one random pick per row instead of one per word (which
    was 40 % of a 1M-post load), with text varied enough for sizes, TOAST and statistics to look real."""
    return [_sentence(rng, words) for _ in range(count)]


def _posts_per_user(spec: SeedSpec, rng: random.Random) -> list[int]:
    hot = min(spec.hot_users, spec.users)
    hot_total = int(spec.posts * spec.hot_share) if hot else 0
    counts = [0] * spec.users
    for i in range(hot):
        counts[i] = hot_total // hot
    rest = spec.posts - sum(counts)
    cold = spec.users - hot
    if cold > 0:
        for _ in range(rest):
            counts[hot + int(rng.paretovariate(1.5) * 7) % cold] += 1
    elif hot:
        counts[0] += rest
    return counts


@dataclass(frozen=True)
class _Offsets:
    """The highest id already in each table: a seed without ``reset`` appends after them."""

    user: int
    post: int
    comment: int

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> _Offsets:
        ids = [
            int(await conn.fetchval(f"SELECT COALESCE(max(id), 0) FROM {t}")) for t in ("users", "posts", "comments")
        ]
        return cls(*ids)


def _user_rows(first: int, count: int) -> list[tuple[int, str, str, datetime]]:
    return [
        (first + i, f"Citizen {first + i}", f"citizen{first + i}@example.org", EPOCH + timedelta(minutes=i))
        for i in range(count)
    ]


def _post_rows(
    rng: random.Random, owners: list[int], first: int, titles: list[str], bodies: list[str]
) -> Iterator[tuple[int, int, str, str, str, datetime]]:
    """One post per entry of ``owners`` (ids from ``first``), with a weighted status and a time in 300 days."""
    picks = rng.choices([name for name, _ in STATUS_WEIGHTS], weights=[w for _, w in STATUS_WEIGHTS], k=len(owners))
    span_us = 300 * 24 * 3600 * 10**6
    pick = rng.randrange
    for i, owner in enumerate(owners):
        pid = first + i
        created = EPOCH + timedelta(microseconds=pick(span_us))
        yield pid, owner, f"Post {pid}: {titles[pick(PHRASES)]}", bodies[pick(PHRASES)], picks[i], created


def _comment_rows(
    rng: random.Random, spec: SeedSpec, offsets: _Offsets, posts: int, regular: int, users: int, texts: list[str]
) -> Iterator[tuple[int, int, int, str, datetime]]:
    """Comments on the ``posts`` posts just loaded: exponentially many on each of the first ``regular``,
    ``SHOWCASE_COMMENTS`` on each showcase post after them, by random users."""
    cid = offsets.comment
    for i in range(posts):
        post_id = offsets.post + i + 1
        if i >= regular:
            n = SHOWCASE_COMMENTS
        else:
            # rounded, not truncated: the mean stays at comments_per_post (truncating gave 0.58 for 1.0)
            n = round(rng.expovariate(1 / spec.comments_per_post)) if spec.comments_per_post else 0
        for _ in range(n):
            cid += 1
            commenter = offsets.user + rng.randrange(users) + 1
            yield cid, post_id, commenter, texts[rng.randrange(PHRASES)], EPOCH + timedelta(seconds=cid)


async def seed(
    database_url: str,
    spec: SeedSpec | None = None,
    *,
    reset: bool = True,
    progress: Progress | None = None,
) -> SeedResult:
    """Load ``spec`` into a migrated CitizenApp database; ``reset`` empties the tables first."""
    spec = spec or SeedSpec()
    rng = random.Random(spec.random_seed)
    result = SeedResult()
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        if reset:
            await conn.execute("TRUNCATE comments, posts, users RESTART IDENTITY")
        offsets = await _Offsets.read(conn)

        began = time.perf_counter()
        total_users = spec.users + (1 if spec.showcase else 0)
        user_rows = _user_rows(offsets.user + 1, total_users)
        await conn.copy_records_to_table("users", records=user_rows, columns=["id", "name", "email", "created_at"])
        result.users = total_users
        result.hot_user_ids = [offsets.user + i + 1 for i in range(min(spec.hot_users, spec.users))]
        result.seconds["users"] = time.perf_counter() - began

        counts = _posts_per_user(spec, rng)
        owners: list[int] = [offsets.user + u + 1 for u, n in enumerate(counts) for _ in range(n)]
        rng.shuffle(owners)  # interleave owners so a hot user's rows are spread over the heap, as in life
        if spec.showcase:
            result.showcase_user_id = offsets.user + total_users
            owners.extend([result.showcase_user_id] * SHOWCASE_POSTS)
        titles, bodies, texts = _phrases(rng, 4), _phrases(rng, 20), _phrases(rng, 8)

        began = time.perf_counter()
        result.posts = await _copy_chunks(
            conn,
            "posts",
            ["id", "user_id", "title", "body", "status", "created_at"],
            _post_rows(rng, owners, offsets.post + 1, titles, bodies),
            len(owners),
            progress,
        )
        result.seconds["posts"] = time.perf_counter() - began

        regular = len(owners) - (SHOWCASE_POSTS if spec.showcase else 0)
        expected_comments = int(regular * spec.comments_per_post) + (
            SHOWCASE_POSTS * SHOWCASE_COMMENTS if spec.showcase else 0
        )
        began = time.perf_counter()
        result.comments = await _copy_chunks(
            conn,
            "comments",
            ["id", "post_id", "user_id", "text", "created_at"],
            _comment_rows(rng, spec, offsets, len(owners), regular, total_users, texts),
            expected_comments,
            progress,
        )
        result.seconds["comments"] = time.perf_counter() - began

        began = time.perf_counter()
        await _analyze(conn)
        result.seconds["analyze"] = time.perf_counter() - began
    finally:
        await conn.close()
    return result


async def _analyze(conn: asyncpg.Connection) -> None:
    """Fresh statistics for the planner, and sequences past the ids COPY wrote."""
    # Row counters reach pg_stat when the backend flushes them; flush first, or the last COPY chunk would
    # count as "modified since analyze" and the doctor would (rightly) call the fresh statistics stale.
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("ANALYZE users, posts, comments")
    for table in ("users", "posts", "comments"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT max(id) FROM {table}), 1))"
        )


async def _copy_chunks(
    conn: asyncpg.Connection,
    table: str,
    columns: list[str],
    rows: Iterator[tuple[object, ...]],
    expected: int,
    progress: Progress | None,
) -> int:
    """COPY ``rows`` in chunks, building the next chunk (in a thread) while the server ingests this one:
    generating rows and PostgreSQL's COPY + index maintenance then overlap on the two cores."""

    def next_chunk() -> list[tuple[object, ...]]:
        return list(itertools.islice(rows, CHUNK))

    done = 0
    chunk = next_chunk()
    while chunk:
        copying = asyncio.ensure_future(conn.copy_records_to_table(table, records=chunk, columns=columns))
        try:
            upcoming = await asyncio.to_thread(next_chunk)
        finally:
            await copying
        done += len(chunk)
        chunk = upcoming
        if progress:
            progress(table, done, max(expected, done) if chunk else done)
    return done
