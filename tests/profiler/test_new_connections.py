"""New database connections per request: a NullPool app is a finding on every request (its log event once a
minute, its counter exact), a warm pool never is, a churning pool is once its churn is sustained; sync engines
too; uninstrument() removes the listeners."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool
from structlog.testing import capture_logs

from pgpulse.db.urls import async_url
from pgpulse.profiler import NewConnections, PgPulseMiddleware, Record, instrument, profile, uninstrument
from pgpulse.profiler.connections import CHURN_SHARE, CHURN_WINDOW
from pgpulse.profiler.context import ConnectReason
from pgpulse.profiler.events import _installed
from pgpulse.profiler.metrics import REGISTRY
from pgpulse.profiler.reporting import NEW_CONNECTION_LOG

NUMBERS = r"(\d+) new connections?, (\d+\.\d) ms of the request's (\d+\.\d) ms spent connecting"
NULLPOOL_TEXT = re.compile(
    rf"New connection per request: {NUMBERS} \(pool 'nullpool-async': NullPool reuses none\)\n"
    r"  fix:   create_async_engine\(url, pool_size=5, max_overflow=10, pool_pre_ping=True\) instead of "
    r"poolclass=NullPool \(pool_size: the worker's concurrent requests\); when many processes connect, PgBouncer in "
    r"transaction mode between the processes and PostgreSQL \(asyncpg behind PgBouncer < 1\.21: "
    r'connect_args=\{"statement_cache_size": 0\}\)'
)


def new_connections(pool: str) -> float:
    return REGISTRY.get_sample_value("pgpulse_db_new_connections_total", {"pool": pool}) or 0.0


def make_app(engine: AsyncEngine, records: list[Record], sleep: float = 0.0) -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, int]:
        async with AsyncSession(engine) as session:
            value = (await session.execute(text("SELECT 1 FROM pg_sleep(:s)"), {"s": sleep})).scalar_one()
        return {"value": value}

    app.add_middleware(PgPulseMiddleware, on_record=records.append)
    return app


@asynccontextmanager
async def serving(engine: AsyncEngine, pool: str, sleep: float = 0.0) -> AsyncIterator[tuple[Any, list[Record]]]:
    instrument(engine, pool_name=pool)
    records: list[Record] = []
    transport = httpx.ASGITransport(app=make_app(engine, records, sleep))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client, records
    finally:
        uninstrument(engine)
        await engine.dispose()


async def test_a_nullpool_request_is_one_finding_with_its_numbers_and_one_log_line_a_minute(shop: Any) -> None:
    NEW_CONNECTION_LOG.clear()
    before = new_connections("nullpool-async")
    engine = create_async_engine(async_url(shop.url), poolclass=NullPool)
    async with serving(engine, "nullpool-async") as (client, records):
        with capture_logs() as logs:
            for _ in range(30):
                assert (await client.get("/ping")).status_code == 200
    assert len(records) == 30
    for record in records:
        assert record.new_connections == 1 and record.findings == []  # the N+1 list is left alone
        [finding] = record.connections
        assert isinstance(finding, NewConnections) and finding.reason is ConnectReason.NO_POOL
        assert finding.kind == "new_connection_per_request" and finding.count == 1
        assert (finding.route, finding.method, finding.pool_class) == ("/ping", "GET", "NullPool")
        assert finding.connect_ms == record.connect_ms
        assert 0 < finding.connect_ms <= finding.request_ms == record.elapsed_ms
        match = NULLPOOL_TEXT.fullmatch(finding.describe())
        assert match is not None, finding.describe()
        assert match.groups() == ("1", f"{finding.connect_ms:.1f}", f"{finding.request_ms:.1f}")
    # 30 findings, one line: the rest are counted in the next line's `suppressed`
    [line] = [e for e in logs if e["event"] == "new_connection_per_request"]
    assert line["route"] == "/ping" and line["method"] == "GET" and line["suppressed"] == 0
    assert (line["pool"], line["pool_class"], line["reason"]) == ("nullpool-async", "NullPool", "no_pool")
    assert line["count"] == 1
    assert line["fix"] == records[0].connections[0].fix and line["churn"] is None
    assert new_connections("nullpool-async") - before == 30 == sum(r.new_connections for r in records)


async def test_a_warm_pool_is_never_a_finding_though_its_first_requests_open_connections(shop: Any) -> None:
    engine = create_async_engine(async_url(shop.url), pool_size=5, max_overflow=10)
    assert isinstance(engine.sync_engine.pool, AsyncAdaptedQueuePool)
    before = new_connections("warm-pool")
    async with serving(engine, "warm-pool", sleep=0.005) as (client, records):
        with capture_logs() as logs:
            for _ in range(100):
                assert (await client.get("/ping")).status_code == 200
            for _ in range(20):  # five at a time: the pool's size, so it grows to 5 and never overflows
                responses = await asyncio.gather(*(client.get("/ping") for _ in range(5)))
                assert {r.status_code for r in responses} == {200}
    assert len(records) == 200
    assert records[0].new_connections == 1  # the warm-up: "any new connection" would be a finding here
    opened = sum(r.new_connections for r in records)
    assert 2 <= opened <= 5 and new_connections("warm-pool") - before == opened
    assert [r for r in records if r.connections] == []
    assert [e for e in logs if e["event"] == "new_connection_per_request"] == []


async def test_a_pool_too_small_for_its_bursts_churns_and_is_a_finding(shop: Any) -> None:
    NEW_CONNECTION_LOG.clear()
    engine = create_async_engine(async_url(shop.url), pool_size=1, max_overflow=10)
    async with serving(engine, "churning", sleep=0.05) as (client, records):
        with capture_logs() as logs:
            for _ in range(20):  # 8 at once over a pool of 1: 7 overflow connections opened and closed each time
                responses = await asyncio.gather(*(client.get("/ping") for _ in range(8)))
                assert {r.status_code for r in responses} == {200}
    assert len(records) == 160
    opened = sum(r.new_connections for r in records)
    assert opened >= 20 * 6  # most checkouts opened a connection
    # judged only once the window of 100 checkouts is full: the first 12 bursts (96 checkouts) never are
    assert [r for r in records[: 12 * 8] if r.connections] == []
    found = [f for r in records for f in r.connections]
    assert len(found) >= 5 * 6  # the last bursts: every request that opened one
    for record in records:
        if record.connections:
            [finding] = record.connections
            assert finding.count == record.new_connections >= 1
    for finding in found:
        assert finding.reason is ConnectReason.CHURN and finding.kind == "connection_churn"
        assert finding.pool_class == "AsyncAdaptedQueuePool" and finding.window == CHURN_WINDOW
        assert finding.churn is not None and CHURN_SHARE <= finding.churn <= CHURN_WINDOW
        assert 0 < finding.connect_ms <= finding.request_ms
        text_ = finding.describe()
        assert text_.startswith(f"Connection churn: 1 new connection, {finding.connect_ms:.1f} ms of the request's ")
        assert f"(pool 'churning': AsyncAdaptedQueuePool, {finding.churn} of its last 100 checkouts opened" in text_
        match = re.search(r"create_async_engine\(url, pool_size=(\d+), max_overflow=10, pool_pre_ping=True\)", text_)
        assert match is not None and 2 <= int(match.group(1)) <= 8, text_
        assert "(pool_size is 1 now and " in text_ and "pool_recycle" not in text_
    [line] = [e for e in logs if e["event"] == "new_connection_per_request"]
    assert line["reason"] == "churn" and line["pool"] == "churning" and line["churn"] >= CHURN_SHARE


def test_a_sync_nullpool_engine_in_a_profile_block(shop: Any) -> None:
    engine = create_engine(async_url(shop.url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    instrument(engine, pool_name="nullpool-sync")
    try:
        with profile() as record:
            for _ in range(2):
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
        assert record.new_connections == 2
        [finding] = record.connections
        assert finding.count == 2 and finding.reason is ConnectReason.NO_POOL and finding.route is None
        assert 0 < finding.connect_ms <= finding.request_ms == record.elapsed_ms
        assert finding.describe().startswith(
            f"New connection per request: 2 new connections, {finding.connect_ms:.1f} ms of the request's "
            f"{finding.request_ms:.1f} ms spent connecting (pool 'nullpool-sync': NullPool reuses none)\n"
            "  fix:   create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True) instead of poolclass="
        )
        assert finding.fix.endswith('(psycopg behind PgBouncer < 1.21: connect_args={"prepare_threshold": None})')
    finally:
        uninstrument(engine)
        engine.dispose()


async def test_a_nested_record_hands_its_finding_up_once(shop: Any) -> None:
    engine = create_async_engine(async_url(shop.url), poolclass=NullPool)
    async with serving(engine, "nullpool-nested") as (client, records):
        with profile() as outer:  # the pytest plugin's way: a block around an HTTP call
            assert (await client.get("/ping")).status_code == 200
    [inner] = records
    assert outer.connections == inner.connections and len(outer.connections) == 1
    assert outer.new_connections == 0  # the counters stay the record's own: the block's detection finds nothing


def test_uninstrument_removes_the_connection_listeners(shop: Any) -> None:
    engine = create_engine(async_url(shop.url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    instrument(engine, pool_name="nullpool-removed")
    listeners = [(t, n, f) for t, n, f in _installed[engine].listeners if n in ("do_connect", "connect")]
    assert {n for _, n, _ in listeners} == {"do_connect", "connect"}
    assert all(event.contains(t, n, f) for t, n, f in listeners)
    assert uninstrument(engine) is True
    assert not any(event.contains(t, n, f) for t, n, f in listeners)
    before = new_connections("nullpool-removed")
    with profile() as record, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert record.new_connections == 0 and record.connections == []
    assert new_connections("nullpool-removed") == before
    engine.dispose()
