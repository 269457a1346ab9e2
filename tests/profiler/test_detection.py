"""N+1 detection on a real database: each pattern found with its relationship, line and fix; eager loading
and single queries never flagged; the threshold means what it says."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, joinedload, selectinload

from pgpulse.demo.models import Comment, Post, User
from pgpulse.profiler import profile

THIS_FILE = __file__
EAGER = selectinload(User.posts).selectinload(Post.comments)


def line_of(marker: str) -> int:
    """The line number in this file of the line ending with ``# <marker>``."""
    with open(THIS_FILE) as source:
        lines = source.read().splitlines()
    for number, line in enumerate(lines, 1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(marker)


async def test_async_lazy_loads_name_the_relationship_the_line_and_the_chained_fix(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    with profile() as record:
        async with AsyncSession(db.async_engine) as session:
            user = await session.get(User, uid)
            assert user is not None
            for post in await user.awaitable_attrs.posts:
                await post.awaitable_attrs.comments  # LAZY-COMMENTS
    assert record.query_count == 1 + 1 + 50
    assert len(record.findings) == 1
    finding = record.findings[0]
    assert finding.kind == "lazy_load"
    assert finding.relationship == "Post.comments"
    assert finding.loaded_via == "User.posts"
    assert finding.count == 50
    assert finding.site is not None
    assert finding.site.filename == THIS_FILE and finding.site.lineno == line_of("LAZY-COMMENTS")
    assert "selectinload(User.posts).selectinload(Post.comments)" in finding.fix
    assert "$1" in finding.statement  # asyncpg's placeholder, never the value
    assert "User.posts" in finding.describe() and "Post.comments" in finding.describe()


async def test_lazy_load_of_the_first_level_is_named_when_it_repeats(db: Any) -> None:
    """Many users → their posts: ``User.posts`` itself is the N+1."""
    with profile() as record:
        async with AsyncSession(db.async_engine) as session:
            users = (await session.scalars(select(User).order_by(User.id).limit(8))).all()
            for user in users:
                await user.awaitable_attrs.posts  # LAZY-POSTS
    [finding] = record.findings
    assert finding.relationship == "User.posts" and finding.loaded_via is None
    assert finding.count == 8
    assert finding.site is not None and finding.site.lineno == line_of("LAZY-POSTS")
    assert finding.fix.startswith(".options(selectinload(User.posts))")


async def test_explicit_query_in_a_loop_is_caught_with_the_loop_line(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    async with AsyncSession(db.async_engine) as session:
        post_ids = (await session.scalars(select(Post.id).where(Post.user_id == uid))).all()
        with profile() as record:
            for pid in post_ids[:12]:
                await session.execute(select(Comment).where(Comment.post_id == pid))  # LOOP-QUERY
    [finding] = record.findings
    assert finding.kind == "repeated_query" and finding.relationship is None
    assert finding.count == 12
    assert finding.site is not None and finding.site.lineno == line_of("LOOP-QUERY")
    assert "ANY" in finding.fix


async def test_session_get_and_refresh_in_loops_are_caught(db: Any) -> None:
    async with AsyncSession(db.async_engine) as session:
        with profile() as gets:
            for uid in range(1, 8):
                await session.get(User, uid)  # LOOP-GET
        users = list((await session.scalars(select(User).limit(6))).all())
        with profile() as refreshes:
            for user in users:
                await session.refresh(user)  # LOOP-REFRESH
    assert [f.count for f in gets.findings] == [7]
    assert gets.findings[0].site is not None and gets.findings[0].site.lineno == line_of("LOOP-GET")
    assert [f.count for f in refreshes.findings] == [6]
    site = refreshes.findings[0].site
    assert site is not None and site.lineno == line_of("LOOP-REFRESH")


def test_sync_session_lazy_loads_are_caught(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    with profile() as record, Session(db.sync_engine) as session:
        user = session.get(User, uid)
        assert user is not None
        texts = [[c.text for c in post.comments] for post in user.posts]  # SYNC-LAZY
    assert len(texts) == 50
    [finding] = record.findings
    assert finding.relationship == "Post.comments" and finding.loaded_via == "User.posts"
    assert finding.site is not None and finding.site.lineno == line_of("SYNC-LAZY")
    assert "selectinload(User.posts).selectinload(Post.comments)" in finding.fix


async def test_eager_loading_and_single_queries_are_never_flagged(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    async with AsyncSession(db.async_engine) as session:
        with profile() as selectin:
            stmt = select(User).where(User.id == uid).options(selectinload(User.posts).selectinload(Post.comments))
            user = (await session.scalars(stmt)).one()
            assert sum(len(p.comments) for p in user.posts) == 500
        session.expunge_all()
        with profile() as joined:
            stmt = select(Post).where(Post.user_id == uid).options(joinedload(Post.comments))
            posts = (await session.scalars(stmt)).unique().all()
            assert len(posts) == 50
        with profile() as single:
            await session.execute(text("SELECT count(*) FROM comments"))
    assert selectin.findings == [] and selectin.query_count == 3
    assert joined.findings == [] and joined.query_count == 1
    assert single.findings == [] and single.query_count == 1
    # with a sync session too
    with profile() as sync_selectin, Session(db.sync_engine) as sync_session:
        stmt = select(User).where(User.id == uid).options(selectinload(User.posts).selectinload(Post.comments))
        sync_session.scalars(stmt).one()
    assert sync_selectin.findings == [] and sync_selectin.query_count == 3


async def test_threshold_is_the_number_of_repeats_that_counts(db: Any) -> None:
    async with AsyncSession(db.async_engine) as session:
        for repeats, threshold, expected in [(4, 5, 0), (5, 5, 1), (3, 3, 1), (2, 3, 0)]:
            with profile(threshold=threshold) as record:
                for uid in range(1, repeats + 1):
                    await session.execute(select(User.name).where(User.id == uid))
            assert len(record.findings) == expected, (repeats, threshold)
            if expected:
                assert record.findings[0].count == repeats


async def test_the_stack_is_walked_only_once_a_shape_reaches_the_threshold(db: Any, monkeypatch: Any) -> None:
    """Cheap at runtime: a shape below the threshold is never located; one that reaches it is, from then on
    (so two call sites of one shape can be told apart)."""
    from pgpulse.profiler import events

    calls: list[int] = []
    real = events.find_site
    monkeypatch.setattr(events, "find_site", lambda skip: calls.append(1) or real(skip + 1))
    async with AsyncSession(db.async_engine) as session:
        with profile(threshold=5) as once:
            await session.execute(select(User.name).where(User.id == 1))
            await session.execute(select(User.email).where(User.id == 1))
            await session.execute(select(Post.title).where(Post.id == 1))
        assert calls == [] and once.query_count == 3
        with profile(threshold=5) as record:
            for uid in range(1, 21):
                await session.execute(select(User.name).where(User.id == uid))
            for uid in range(1, 5):
                await session.execute(select(User.email).where(User.id == uid))
    assert len(calls) == 20 - 4  # runs 5..20 of the first shape; none of the second (4 runs < 5)
    assert [f.count for f in record.findings] == [20]


async def test_a_nested_blocks_n_plus_one_is_reported_once_beside_the_outer_blocks_own(db: Any) -> None:
    """The pytest plugin's shape: a request's record nested in the test's. Each record judges its own statements;
    the inner one's finding goes up as it is, and its statements are not grouped again by the outer one (they
    were, when the outer block ran the same shape enough times itself: the inner N+1 was reported twice)."""
    uid = db.seeded.showcase_user_id
    async with AsyncSession(db.async_engine) as session:
        post_ids = (await session.scalars(select(Post.id).where(Post.user_id == uid))).all()
        with profile() as outer:
            for pid in post_ids[:6]:
                await session.execute(select(Comment).where(Comment.post_id == pid))  # OUTER-LOOP
            with profile() as inner:
                for pid in post_ids[6:13]:
                    await session.execute(select(Comment).where(Comment.post_id == pid))  # INNER-LOOP
    [inner_finding] = inner.findings
    assert inner_finding.count == 7 and inner_finding.site is not None
    assert inner_finding.site.lineno == line_of("INNER-LOOP")
    assert outer.query_count == 13  # every statement still counted in the outer record
    lines = sorted((f.site.lineno if f.site else 0, f.count) for f in outer.findings)
    assert lines == [(line_of("OUTER-LOOP"), 6), (line_of("INNER-LOOP"), 7)]
