"""A migrated, seeded CitizenApp database and an in-process client for it, shared by this package's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
from fastapi import FastAPI

from pgpulse.demo.app import create_app
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedResult, SeedSpec, seed

SPEC = SeedSpec(users=60, posts=3_000, comments_per_post=2.0, hot_users=2, hot_share=0.4)


@dataclass
class Citizen:
    url: str
    seeded: SeedResult
    app: FastAPI
    client: httpx.AsyncClient


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def citizen(make_database) -> AsyncIterator[Citizen]:  # type: ignore[no-untyped-def]
    url = await make_database("citizen")
    await upgrade_async(url)
    seeded = await seed(url, SPEC)
    app = create_app(url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://citizen") as client:
            yield Citizen(url=url, seeded=seeded, app=app, client=client)
