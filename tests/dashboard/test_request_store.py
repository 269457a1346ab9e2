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

from pgpulse.dashboard import RequestRing
from pgpulse.dashboard.request_store import RequestHistory
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
