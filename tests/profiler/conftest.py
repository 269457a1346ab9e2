"""A seeded CitizenApp database with instrumented async (asyncpg) and sync (psycopg) engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pgpulse.db.urls import async_url
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedResult, SeedSpec, seed
from pgpulse.profiler import instrument


@dataclass
class Db:
    url: str
    seeded: SeedResult
    async_engine: AsyncEngine
    sync_engine: Engine


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def db(make_database) -> AsyncIterator[Db]:  # type: ignore[no-untyped-def]
    url = await make_database("prof")
    await upgrade_async(url)
    seeded = await seed(url, SeedSpec(users=20, posts=400, comments_per_post=2.0, hot_users=1))
    async_engine = create_async_engine(async_url(url))
    sync_engine = create_engine(async_url(url).set(drivername="postgresql+psycopg"))
    instrument(async_engine, threshold=5, pool_name="test-async")
    instrument(sync_engine, threshold=5, pool_name="test-sync")
    yield Db(url, seeded, async_engine, sync_engine)
    await async_engine.dispose()
    sync_engine.dispose()


@dataclass
class Shop:
    url: str
    async_engine: AsyncEngine
    sync_engine: Engine


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def shop(make_database) -> AsyncIterator[Shop]:  # type: ignore[no-untyped-def]
    """The tests' own app database (tests/profiler/apps): seeded once, instrumented with threshold 5."""
    from tests.profiler.apps.shop_models import create_and_seed

    url = await make_database("shop")
    async_engine = create_async_engine(async_url(url))
    sync_engine = create_engine(async_url(url).set(drivername="postgresql+psycopg"))
    await create_and_seed(async_engine)
    instrument(async_engine, threshold=5, pool_name="shop-async")
    instrument(sync_engine, threshold=5, pool_name="shop-sync")
    yield Shop(url, async_engine, sync_engine)
    await async_engine.dispose()
    sync_engine.dispose()
