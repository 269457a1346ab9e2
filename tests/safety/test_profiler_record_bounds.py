"""An open record is bounded whatever runs inside it: a batch job in ``profile()``, an N+1 over 20,000 rows, a
request that loops. It keeps its first MAX_QUERIES_KEPT statements and counts the rest, so the numbers it reports
(query count, database time, the duration histogram, an N+1's count) stay exact while its memory stops growing.

Real PostgreSQL, a real psycopg engine (sync: the cheapest real round trip, to run 30,000 statements in seconds)
and asyncpg behind a FastAPI app for the middleware."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import Engine, ForeignKey, create_engine, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload
from structlog.testing import capture_logs

from pgpulse.db.urls import async_url
from pgpulse.profiler import PgPulseMiddleware, instrument, orm, profile, uninstrument
from pgpulse.profiler.context import MAX_QUERIES_KEPT
from pgpulse.profiler.metrics import REGISTRY

PARENTS = 12_000  # lazy loads: ≈ 0.6 ms each through psycopg, so past the cap and no further
SHAPES = ("SELECT 1", "SELECT now()", "SELECT pi()")  # three fingerprints (constants are not part of one)


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(primary_key=True)
    children: Mapped[list[Child]] = relationship(back_populates="parent")


class Child(Base):
    __tablename__ = "child"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parent.id"))
    parent: Mapped[Parent] = relationship(back_populates="children")


class Node(Base):
    __tablename__ = "node"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))
    children: Mapped[list[Node]] = relationship()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def url(make_database: Any) -> str:
    return str(await make_database("recbounds"))


@pytest.fixture(scope="module")
def engine(url: str) -> Iterator[Engine]:
    engine = create_engine(async_url(url).set(drivername="postgresql+psycopg"))
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO parent (id) SELECT g FROM generate_series(1, {PARENTS}) g"))
        conn.execute(text(f"INSERT INTO child (id, parent_id) SELECT g, g FROM generate_series(1, {PARENTS}) g"))
        # a tree: 1 → 2 → 3 → 4 → 5 (five levels), each node one child
        conn.execute(text("INSERT INTO node (id, parent_id) SELECT g, NULLIF(g - 1, 0) FROM generate_series(1, 5) g"))
    instrument(engine, threshold=5, slow_query_ms=1e9, pool_name="record-bounds")
    yield engine
    uninstrument(engine)
    engine.dispose()


def histogram(route: str, method: str, suffix: str) -> float:
    value = REGISTRY.get_sample_value(f"pgpulse_db_query_duration_seconds{suffix}", {"route": route, "method": method})
    return value or 0.0


def test_a_runaway_block_keeps_the_cap_counts_every_query_and_stops_growing(engine: Engine) -> None:
    count_before, sum_before = histogram("", "", "_count"), histogram("", "", "_sum")
    rounds, first = 10_000, MAX_QUERIES_KEPT // len(SHAPES) + 1  # 3 × 3,334 = 10,002: just past the cap
    with profile() as record, engine.connect() as conn:
        for _ in range(first):
            for sql in SHAPES:
                conn.exec_driver_sql(sql)
        assert len(record.queries) == MAX_QUERIES_KEPT and record.dropped == first * len(SHAPES) - MAX_QUERIES_KEPT
        kept_ms = sum(q.duration_ms for q in record.queries)
        at_cap_ms = record.db_ms
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(rounds - first):
                for sql in SHAPES:
                    conn.exec_driver_sql(sql)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        for _ in range(3):  # failed statements obey the same cap
            with pytest.raises(Exception, match="division by zero"):
                conn.exec_driver_sql("SELECT 1 / 0")
            conn.rollback()
    total = rounds * len(SHAPES) + 3
    # 20,000 statements past the cap kept nothing (measured: < 1 KB; a record without the cap grew 3.3 MB here)
    assert grown < 256 * 1024, grown
    assert len(record.queries) == MAX_QUERIES_KEPT and record.query_count == total
    assert record.dropped == total - MAX_QUERIES_KEPT and record.failed_count == 3 and record.failed == []
    assert record.db_ms >= kept_ms and record.db_ms > at_cap_ms  # the unkept statements' time was added
    # every statement, kept or not, in the histogram: exactly once each, their time summed as db_ms
    assert histogram("", "", "_count") - count_before == total
    assert histogram("", "", "_sum") - sum_before == pytest.approx(record.db_ms / 1000.0, rel=1e-9)
    # each shape ran 10,000 times from one line: its count is exact although only a third of it was kept
    assert sorted(f.count for f in record.findings) == [rounds] * 3
    for finding in record.findings:
        assert not finding.at_least and finding.inspected == MAX_QUERIES_KEPT and finding.total == total
        assert f"({MAX_QUERIES_KEPT:,} of {total:,} queries inspected)" in finding.describe()


def test_an_nplusone_past_the_cap_is_one_finding_with_its_exact_count(engine: Engine) -> None:
    with profile() as record, Session(engine) as session:
        parents = session.scalars(select(Parent)).all()
        for parent in parents:
            assert len(parent.children) == 1  # one lazy load per parent
    total = PARENTS + 1
    assert record.query_count == total and len(record.queries) == MAX_QUERIES_KEPT
    [finding] = record.findings
    assert finding.relationship == "Parent.children" and finding.count == PARENTS and not finding.at_least
    assert finding.site is not None and "test_profiler_record_bounds.py" in finding.site.filename
    text_ = finding.describe()
    assert text_.startswith(f"N+1: lazy load of Parent.children ran {PARENTS} times at ")
    assert f"({MAX_QUERIES_KEPT:,} of {total:,} queries inspected)" in text_


def test_an_nplusone_that_starts_past_the_cap_is_found_from_its_sample(engine: Engine) -> None:
    with profile() as record, engine.connect() as conn:
        for _ in range(MAX_QUERIES_KEPT):
            conn.exec_driver_sql("SELECT 1")
        for i in range(30):
            conn.execute(text("SELECT CAST(:i AS int) + 1"), {"i": i})  # the late loop
    late = [f for f in record.findings if "+" in f.statement]
    assert [f.count for f in late] == [30] and not late[0].at_least
    assert late[0].site is not None and "the late loop" in late[0].site.line


def test_a_shape_from_two_lines_past_the_cap_claims_only_a_lower_bound(engine: Engine) -> None:
    with profile() as record, engine.connect() as conn:
        for _ in range(MAX_QUERIES_KEPT // 2 + 500):
            conn.exec_driver_sql("SELECT 1")  # line A
            conn.exec_driver_sql("SELECT 1")  # line B: the same shape
    total = MAX_QUERIES_KEPT + 1000
    assert record.query_count == total
    assert len(record.findings) == 2
    assert all(f.at_least for f in record.findings)
    assert sum(f.count for f in record.findings) == MAX_QUERIES_KEPT  # what the kept part shows, no more
    assert all(f.describe().startswith(f"N+1: the same query ran at least {f.count} times") for f in record.findings)


def test_nested_blocks_add_up_exactly_in_the_parent(engine: Engine) -> None:
    count_before = histogram("", "", "_count")
    inner_n, outer_before, outer_after = MAX_QUERIES_KEPT + 2_000, 3_000, 1_000
    with capture_logs() as logs, profile() as outer, engine.connect() as conn:
        for _ in range(outer_before):
            conn.exec_driver_sql("SELECT 1")
        with profile() as inner:
            for _ in range(inner_n):
                conn.exec_driver_sql("SELECT now()")
        assert inner.query_count == inner_n and inner.dropped == 2_000
        assert outer.query_count == outer_before + inner_n and len(outer.queries) == MAX_QUERIES_KEPT
        for _ in range(outer_after):
            conn.exec_driver_sql("SELECT 1")
    total = outer_before + inner_n + outer_after
    assert outer.query_count == total and outer.dropped == total - MAX_QUERIES_KEPT
    assert outer.queries[:outer_before] and outer.queries[outer_before].statement == "SELECT now()"
    own_ms = sum(q.duration_ms for q in outer.queries[:outer_before])
    assert outer.db_ms >= inner.db_ms + own_ms
    assert histogram("", "", "_count") - count_before == total  # observed once, by the outermost record
    truncated = [e for e in logs if e["event"] == "record_truncated"]
    assert [(e["kept"], e["total"]) for e in truncated] == [(MAX_QUERIES_KEPT, inner_n), (MAX_QUERIES_KEPT, total)]
    inner_findings = [f for f in outer.findings if f.fingerprint == inner.queries[0].fingerprint]
    assert [f.count for f in inner_findings] == [inner_n]  # the child's finding went up, exact


@pytest_asyncio.fixture(loop_scope="session")
async def async_engine(url: str) -> AsyncIterator[Any]:
    engine = create_async_engine(async_url(url))
    async with engine.connect() as conn:  # the dialect's first-connect queries, outside any record
        await conn.exec_driver_sql("SELECT 1")
    instrument(engine, threshold=5, slow_query_ms=1e9, pool_name="record-bounds-async")
    yield engine
    uninstrument(engine)
    await engine.dispose()


async def test_a_request_that_overflows_logs_once_and_answers(async_engine: Any) -> None:
    app = FastAPI()
    n = MAX_QUERIES_KEPT + 50

    @app.get("/batch/{size}")
    async def batch(size: int) -> dict[str, int]:
        async with async_engine.connect() as conn:
            for _ in range(size):
                await conn.exec_driver_sql("SELECT 1")
        return {"ran": size}

    app.add_middleware(PgPulseMiddleware, server_timing=True)
    count_before = histogram("/batch/{size}", "GET", "_count")
    with capture_logs() as logs:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            response = await client.get(f"/batch/{n}")
    assert response.status_code == 200 and response.json() == {"ran": n}
    assert response.headers["server-timing"].endswith(f'desc="{n} queries"')
    truncated = [e for e in logs if e["event"] == "record_truncated"]
    assert truncated == [
        {
            "event": "record_truncated",
            "log_level": "warning",
            "route": "/batch/{size}",
            "method": "GET",
            "kept": MAX_QUERIES_KEPT,
            "total": n,
        }
    ]
    assert histogram("/batch/{size}", "GET", "_count") - count_before == n
    [finding] = [e for e in logs if e["event"] == "n_plus_one"]
    assert finding["count"] == n  # exact: one line ran them all


def test_eager_options_past_their_cap_are_counted_and_those_before_still_judged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orm, "MAX_EAGER_KEPT", 2)
    with profile() as record, Session(engine) as session:
        for pid in (1, 2, 3, 4):
            session.scalars(select(Parent).where(Parent.id == pid).options(selectinload(Parent.children))).one()
    assert len(record.eager) == 2 and record.eager_dropped == 2
    assert [u.relationship for u in record.unused] == ["Parent.children"]  # judged from the two kept ones


def test_a_self_referential_walk_past_the_depth_cap_stops_tracking_and_keeps_its_levels(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def walk(session: Session) -> None:
        node = session.get(Node, 1)
        while node is not None:
            node = node.children[0] if node.children else None

    with profile() as full, Session(engine) as session:
        walk(session)
    monkeypatch.setattr(orm, "MAX_DEPTHS_TRACKED", 2)
    with profile() as capped, Session(engine) as session:
        walk(session)
    assert len(full.depths) == 4 and len(capped.depths) == 2
    [unbounded] = full.findings
    [bounded] = capped.findings
    assert unbounded.levels == 5 and unbounded.count == 5
    # the two objects tracked kept their levels (2 and 3); the loads from objects past the cap count as level 1
    assert bounded.count == 5 and bounded.levels == 3
