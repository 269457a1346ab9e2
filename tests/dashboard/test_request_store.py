"""Request history in the store is bounded: rows older than the retention go, and so do rows beyond the newest
``max_rows`` of the target. Summaries come from the real profiler through a real ring; the store is a real one
(migrated by the writer on first use)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from pgpulse.dashboard import RequestRing
from pgpulse.dashboard.request_store import RequestHistory, stored_routes
from pgpulse.history.store import HEAD_REVISION, migrate
from pgpulse.profiler import instrument, profile


def _ring_of(database_url: str, routes: list[str]) -> RequestRing:
    ring = RequestRing(size=len(routes))
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    instrument(engine)
    try:
        with engine.connect() as conn:
            for route in routes:
                with profile(route=route) as record:
                    conn.execute(sa.text("SELECT 1")).all()
                record.method = "GET"
                ring.add(record)
    finally:
        engine.dispose()
    return ring


def _unpooled_ring_of(database_url: str, route: str) -> RequestRing:
    """One request on a NullPool engine: it opens its connection inside the record (a finding)."""
    ring = RequestRing(size=1)
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=NullPool)
    instrument(engine)
    try:
        with profile(route=route) as record, engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).all()
        record.method = "GET"
        ring.add(record)
    finally:
        engine.dispose()
    return ring


async def test_retention_drops_rows_past_the_age_and_beyond_the_count(
    make_database: Callable[..., Awaitable[str]],
) -> None:
    target, store = await make_database("reqtarget"), await make_database("reqstore")
    routes = [f"/r/{i}" for i in range(7)]
    ring = await asyncio.to_thread(_ring_of, target, routes)
    history = RequestHistory(store, "t", interval=60, retention=timedelta(days=30), max_rows=3)
    old = time.time() - 31 * 86400
    summaries = ring.items()
    for summary in summaries[:2]:  # two requests from 31 days ago: past the 30-day retention
        history.add(dataclasses.replace(summary, at=old))
    for summary in summaries[2:]:  # five recent ones: only the newest three may stay
        history.add(summary)
    await asyncio.to_thread(history.close)  # writes what is buffered, then stops
    assert history.written == 7
    conn = await asyncpg.connect(store)
    try:
        kept = [r["route"] for r in await conn.fetch("SELECT route FROM pgpulse_history.request ORDER BY request_id")]
    finally:
        await conn.close()
    assert kept == ["/r/4", "/r/5", "/r/6"]


async def test_a_store_at_0002_is_migrated_and_counts_new_connections_from_then_on(
    make_database: Callable[..., Awaitable[str]],
) -> None:
    """Migration 0003 adds the per-request count of new connections: rows written before it read 0, and the
    writer (which migrates a store older than this pgpulse) adds requests next to them, counted."""
    target, store = await make_database("reqtarget"), await make_database("reqstore")
    await asyncio.to_thread(migrate, store, "0002")
    conn = await asyncpg.connect(store)
    try:
        target_id = await conn.fetchval("INSERT INTO pgpulse_history.target (name) VALUES ('t') RETURNING target_id")
        await conn.execute(
            "INSERT INTO pgpulse_history.request (target_id, at, method, route, duration_ms, db_ms, query_count,"
            " nplusone, unused) VALUES ($1, now(), 'GET', '/before', 1, 1, 1, 0, 0)",
            target_id,
        )
        ring = await asyncio.to_thread(_unpooled_ring_of, target, "/after")
        history = RequestHistory(store, "t", interval=60)
        history.add(ring.items()[0])
        await asyncio.to_thread(history.close)
        assert history.written == 1
        assert await conn.fetchval("SELECT version_num FROM pgpulse_history.alembic_version") == HEAD_REVISION
        rows = await conn.fetch("SELECT route, connections FROM pgpulse_history.request ORDER BY request_id")
        pool = await asyncpg.create_pool(store, min_size=1, max_size=1)
        try:
            routes = await stored_routes(pool, "t")
        finally:
            await pool.close()
    finally:
        await conn.close()
    assert [tuple(r.values()) for r in rows] == [("/before", 0), ("/after", 1)]  # a NullPool engine: its connection
    assert routes is not None and sorted((r.route, r.connections) for r in routes) == [("/after", 1), ("/before", 0)]
