"""Bounded resources in the profiler (issue 10 §3): a task that outlives its request adds nothing to the closed
record (it would grow forever otherwise), and ``instrument()`` called twice on one engine counts each statement
once (twice made every query look repeated: a false N+1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from structlog.testing import capture_logs

from pgpulse.db.urls import async_url
from pgpulse.profiler import PgPulseMiddleware, instrument, profile, uninstrument


@pytest_asyncio.fixture(loop_scope="session")
async def engine(make_database: Any) -> AsyncIterator[AsyncEngine]:
    url = await make_database("profbounds")
    engine = create_async_engine(async_url(url))
    instrument(engine)
    yield engine
    uninstrument(engine)
    await engine.dispose()


async def test_a_task_spawned_by_a_request_never_writes_into_its_closed_record(engine: AsyncEngine) -> None:
    app = FastAPI()
    tasks: list[asyncio.Task[int]] = []
    release = asyncio.Event()

    async def straggler() -> int:
        await release.wait()  # runs after the response went out and the record closed
        async with engine.connect() as conn:
            for i in range(200):
                await conn.execute(text("SELECT CAST(:i AS int)"), {"i": i})
        return 200

    @app.get("/spawn")
    async def spawn() -> int:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        tasks.append(asyncio.create_task(straggler()))
        return 1

    app.add_middleware(PgPulseMiddleware, server_timing=True)
    with profile() as outer:  # the test's own record, around the whole request
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            response = await client.get("/spawn")
        queries_at_close = outer.query_count
    release.set()
    assert await tasks[0] == 200  # the task did run its 200 statements…
    assert response.headers["server-timing"].endswith('desc="1 queries"')
    assert queries_at_close == 1 and outer.query_count == 1  # …and no closed record grew by one of them
    assert outer.findings == []


async def test_instrumenting_twice_counts_each_statement_once(engine: AsyncEngine) -> None:
    instrument(engine)
    instrument(engine, threshold=5)
    with profile() as record, capture_logs() as logs:
        async with engine.connect() as conn:
            for i in range(3):
                await conn.execute(text("SELECT CAST(:i AS int)"), {"i": i})
    assert record.query_count == 3 and record.findings == [] and logs == []
