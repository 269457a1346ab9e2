"""The profiler's N+1 and unused-eager log events, and every finding's text, carry the statement's shape only:
literals written into the SQL (a password in a WHERE clause, an e-mail in an IN list, a comment) never appear,
nor do bound parameter values. Parameters are logged only with ``log_parameters=True``, and never in these
events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from structlog.testing import capture_logs

from pgpulse.db.urls import async_url
from pgpulse.profiler import PgPulseMiddleware, instrument, profile, uninstrument

SECRETS = ("hunter2-pass", "ceo@example.org", "4111111111111111", "internal-note", "b0nd-value")


@pytest_asyncio.fixture(loop_scope="session")
async def engine(make_database: Any) -> AsyncIterator[AsyncEngine]:
    url = await make_database("profsecret")
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE users (id int PRIMARY KEY, name text)"))
    instrument(engine)
    yield engine
    uninstrument(engine)
    await engine.dispose()


async def test_n_plus_one_log_event_and_finding_text_carry_no_literal(engine: AsyncEngine) -> None:
    app = FastAPI()

    @app.get("/leaky/{uid}")
    async def leaky(uid: int) -> int:
        async with AsyncSession(engine) as session:
            for i in range(6):
                await session.execute(
                    text(
                        "SELECT name FROM users /* internal-note */ WHERE name <> 'hunter2-pass' "
                        "AND name NOT IN ('ceo@example.org', E'4111111111111111') AND id = :id AND :tag <> ''"
                    ),
                    {"id": uid + i, "tag": "b0nd-value"},
                )
        return 6

    app.add_middleware(PgPulseMiddleware)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    with capture_logs() as logs, profile() as record:
        async with client:
            assert (await client.get("/leaky/1")).status_code == 200
    [event] = [e for e in logs if e["event"] == "n_plus_one"]
    assert event["count"] == 6 and event["route"] == "/leaky/{uid}" and event["method"] == "GET"
    # the driver's own placeholders ($1, $2) keep their numbers; the literals become $3..$6; the comment is gone
    assert event["statement"] == (
        "SELECT name FROM users WHERE name <> $3 AND name NOT IN ($4, $5) AND id = $1 AND $2 <> $6"
    )
    [finding] = record.findings
    shown = repr(logs) + finding.describe() + repr(finding)
    for secret in SECRETS:
        assert secret not in shown, secret
