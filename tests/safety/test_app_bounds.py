"""CitizenApp under a real uvicorn on loopback: clients that leave, hostile bodies, a wrong password.

* A client that hangs up mid-query: the handler is cancelled, PostgreSQL stops the statement (its backend goes
  idle while the lock it waited on is still held) and the pooled connection comes back. Before the fix the
  query waited for the lock to go, and 15 such requests held the pool for minutes.
* A lone surrogate escape (``"\\ud800"``) in any string field of any POST route: 422 naming the field (was a
  500 on every route), also when the surrogate is a key or inside an e-mail address.
* A 100 KB field: 422 whose body does not echo 100 KB back.
* A wrong database password: 503 with Retry-After (was a 500).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from pgpulse.db.health import pool_state
from pgpulse.demo.app import create_app
from pgpulse.demo.embedded import free_port
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedResult, SeedSpec, seed
from pgpulse.settings import Settings

APP_NAME = "pgpulse"  # the application_name the engine gives every connection
SETTINGS = {"pool_size": 2, "max_overflow": 0, "pool_timeout": 2.0, "connect_timeout": 2.0, "database_url": None}


@dataclass
class Served:
    app: FastAPI
    base_url: str
    port: int


@contextlib.asynccontextmanager
async def serve(url: str) -> AsyncIterator[Served]:
    app = create_app(url, Settings(**SETTINGS))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield Served(app=app, base_url=f"http://127.0.0.1:{port}", port=port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class Seeded:
    url: str
    seeded: SeedResult


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def citizen_db(make_database: Any) -> Seeded:
    url = await make_database("bounds")
    await upgrade_async(url)
    return Seeded(url=url, seeded=await seed(url, SeedSpec(users=20, posts=300, comments_per_post=1.0)))


async def _app_backends(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await conn.fetch(
        "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'",
        APP_NAME,
    )
    return [dict(r) for r in rows]


async def _poll(conn: asyncpg.Connection, done: Any, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await _app_backends(conn)
        if done(rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.02)


async def test_a_client_that_hangs_up_mid_query_cancels_it_and_frees_the_connection(citizen_db: Seeded) -> None:
    uid = citizen_db.seeded.showcase_user_id
    async with serve(citizen_db.url) as served:
        locker = await asyncpg.connect(citizen_db.url, server_settings={"application_name": "bounds-locker"})
        watcher = await asyncpg.connect(citizen_db.url, server_settings={"application_name": "bounds-watcher"})
        try:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE comments IN ACCESS EXCLUSIVE MODE")
            clients = []
            for _ in range(2):  # the whole pool: both connections wait on the lock
                _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
                writer.write(f"GET /users/{uid}/posts?strategy=lazy HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                await writer.drain()
                clients.append(writer)
            waiting = await _poll(watcher, lambda rows: sum(r["wait_event_type"] == "Lock" for r in rows) == 2, 10)
            assert [r["wait_event_type"] for r in waiting] == ["Lock", "Lock"], waiting
            for writer in clients:
                writer.close()  # the client gives up
            # the lock is still held: only a cancel can end these statements
            left = await _poll(watcher, lambda rows: rows == [], 5)
            assert left == [], f"statements still running after the clients left: {left}"
            deadline = time.monotonic() + 5
            while pool_state(served.app.state.engine)["checked_out"] and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert pool_state(served.app.state.engine)["checked_out"] == 0
            await tx.rollback()
        finally:
            await locker.close()
            await watcher.close()
        async with httpx.AsyncClient(base_url=served.base_url) as client:  # the pool still serves
            response = await client.get(f"/users/{uid}/posts", params={"strategy": "lazy"})
            assert response.status_code == 200 and len(response.json()["posts"]) == 50


SURROGATE_BODIES = [
    ("/users", '{"name": "\\ud800", "email": "a@example.org"}', ["body", "name"]),
    ("/users", '{"name": "Ada", "email": "\\udfffa@example.org"}', ["body", "email"]),
    ("/posts", '{"user_id": 1, "title": "t\\ud800t"}', ["body", "title"]),
    ("/posts", '{"user_id": 1, "title": "t", "body": "\\ud83d"}', ["body", "body"]),
    ("/comments", '{"post_id": 1, "user_id": 1, "text": "x\\udc00"}', ["body", "text"]),
    # a key that is no string at all: pydantic names the body (the key cannot be a loc)
    ("/users", '{"name": "Ada", "email": "b@example.org", "\\ud800": 1}', ["body"]),
]


async def test_lone_surrogates_are_422_naming_the_field_on_every_post_route(citizen_db: Seeded) -> None:
    async with serve(citizen_db.url) as served, httpx.AsyncClient(base_url=served.base_url) as client:
        for path, raw, loc in SURROGATE_BODIES:
            response = await client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
            assert response.status_code == 422, (path, raw, response.status_code, response.text[:300])
            assert loc in [e["loc"] for e in response.json()["detail"]], response.text[:500]
        assert (await client.get("/health/db")).status_code == 200  # nothing broke on the way


async def test_numbers_json_cannot_hold_are_422_not_500(citizen_db: Seeded) -> None:
    """1e400 parses to inf: echoing it back as JSON (which has no Infinity) was the next 500."""
    async with serve(citizen_db.url) as served, httpx.AsyncClient(base_url=served.base_url) as client:
        for raw, loc in (
            ('{"user_id": 1e400, "title": "t"}', ["body", "user_id"]),
            ('{"user_id": 1, "title": "t", "extra": [1e400, -1e400]}', ["body", "extra"]),
        ):
            response = await client.post("/posts", content=raw.encode(), headers={"content-type": "application/json"})
            assert response.status_code == 422, (raw, response.status_code, response.text[:300])
            assert loc in [e["loc"] for e in response.json()["detail"]], response.text[:500]


async def test_a_100_kb_field_is_not_echoed_back(citizen_db: Seeded) -> None:
    big = "x" * 100_000
    async with serve(citizen_db.url) as served, httpx.AsyncClient(base_url=served.base_url) as client:
        response = await client.post("/users", json={"name": big, "email": "big@example.org"})
        assert response.status_code == 422
        assert len(response.content) < 2_000, len(response.content)
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "name"]
        assert error["input"].startswith("x" * 200) and "100,000 characters" in error["input"]
        nested = await client.post("/posts", json={"user_id": 1, "title": "t", "extra": [big] * 3})
        assert nested.status_code == 422 and len(nested.content) < 2_000, len(nested.content)
        assert json.loads(nested.content)["detail"][0]["loc"] == ["body", "extra"]


async def test_a_wrong_database_password_is_503_not_500(citizen_db: Seeded) -> None:
    wrong = make_url(citizen_db.url).set(password="not-the-password").render_as_string(hide_password=False)
    async with serve(wrong) as served, httpx.AsyncClient(base_url=served.base_url) as client:
        for method, path, body in (
            ("GET", "/users/1", None),
            ("GET", "/users/1/posts?strategy=single", None),
            ("POST", "/users", {"name": "Ada", "email": "ada@example.org"}),
        ):
            response = await client.request(method, path, json=body)
            assert response.status_code == 503, (path, response.status_code, response.text[:300])
            assert response.headers["retry-after"] == "1"
            assert "not-the-password" not in response.text
