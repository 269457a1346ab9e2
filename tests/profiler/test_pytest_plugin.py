"""The pytest plugin, run on inner test files through pytester: it must fail what it promises to fail."""

from __future__ import annotations

from typing import Any

import pytest

INNER = """
import os
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session
from pgpulse.demo.models import User
from pgpulse.profiler import instrument

engine = create_engine(os.environ["INNER_URL"])
instrument(engine)
UID = int(os.environ["INNER_UID"])


def walk_comments():
    with Session(engine) as session:
        user = session.get(User, UID)
        return [len(post.comments) for post in user.posts]  # the N+1 line


@pytest.mark.no_nplusone
def test_marked_lazy_walk():
    walk_comments()


def test_unmarked_lazy_walk():
    walk_comments()


@pytest.mark.no_nplusone
def test_marked_clean():
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def test_budget_exceeded(assert_max_queries):
    with assert_max_queries(2), engine.connect() as conn:
        for i in range(3):
            conn.execute(select(User.id).where(User.id == i))


def test_budget_kept(assert_max_queries):
    with assert_max_queries(3) as record, engine.connect() as conn:
        for i in range(3):
            conn.execute(select(User.id).where(User.id == i))
    assert record.query_count == 3


@pytest.mark.asyncio
async def test_marked_async_lazy_walk():
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    aengine = create_async_engine(os.environ["INNER_URL"].replace("+psycopg", "+asyncpg"))
    instrument(aengine)
    try:
        async with AsyncSession(aengine) as session:
            user = await session.get(User, UID)
            for post in await user.awaitable_attrs.posts:
                await post.awaitable_attrs.comments
    finally:
        await aengine.dispose()
test_marked_async_lazy_walk = pytest.mark.no_nplusone(test_marked_async_lazy_walk)
"""


def run_inner(pytester: pytest.Pytester, db: Any, *args: str) -> pytest.RunResult:
    from pgpulse.db.urls import async_url

    url = async_url(db.url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini("[pytest]\nasyncio_mode = strict\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INNER_URL", url)
        mp.setenv("INNER_UID", str(db.seeded.showcase_user_id))
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_marker_and_budget_fail_with_the_finding_and_the_fix(pytester: pytest.Pytester, db: Any) -> None:
    result = run_inner(pytester, db)
    result.assert_outcomes(passed=3, failed=3)
    out = result.stdout.str()
    assert "FAILED test_inner.py::test_marked_lazy_walk" in out
    assert "FAILED test_inner.py::test_marked_async_lazy_walk" in out
    assert "FAILED test_inner.py::test_budget_exceeded" in out
    assert "lazy load of Post.comments (on objects loaded by User.posts) ran 50 times" in out
    assert "selectinload(User.posts).selectinload(Post.comments)" in out
    assert "test_inner.py:16 in" in out  # the source line of the N+1, and its code:
    assert "code:  return [len(post.comments) for post in user.posts]  # the N+1 line" in out
    assert "expected at most 2 queries, 3 ran" in out


def test_option_fails_every_test_with_an_nplusone(pytester: pytest.Pytester, db: Any) -> None:
    result = run_inner(pytester, db, "--pgpulse-fail-on-nplusone")
    result.assert_outcomes(passed=2, failed=4)
    assert "FAILED test_inner.py::test_unmarked_lazy_walk" in result.stdout.str()
