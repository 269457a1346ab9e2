"""A read route that cannot finish in time answers 504 after the route timeout, not after the global 30 s,
and the connection it used serves the next request as if nothing happened."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text

TIMEOUT_MS = 300


async def test_blocked_read_route_gets_504_within_the_route_timeout_and_the_connection_stays_usable(
    citizen_db: Any, citizen_app: Any, settings_for: Any, table_locked: Any, wait_pool_idle: Any
) -> None:
    uid = citizen_db.seeded.hot_user_ids[0]
    # One connection in the pool: the request after the timeout must run on the very connection that timed out.
    settings = settings_for(pool_size=1, max_overflow=0, route_statement_timeout_ms=TIMEOUT_MS)
    async with citizen_app(citizen_db.url, settings) as running:
        client = running.client
        assert (await client.get(f"/users/{uid}/posts/published")).status_code == 200
        async with table_locked(citizen_db.url, "posts"):
            began = time.perf_counter()
            blocked = await client.get(f"/users/{uid}/posts/published")
            elapsed = time.perf_counter() - began
        assert blocked.status_code == 504, blocked.text
        assert blocked.json() == {"detail": "database statement timeout"}
        assert "Retry-After" not in blocked.headers, "a timeout is this request's fault, not the server's"
        assert TIMEOUT_MS / 1000 * 0.9 <= elapsed < TIMEOUT_MS / 1000 + 2.0, elapsed

        after = await client.get(f"/users/{uid}/posts/published", params={"limit": 3})
        assert after.status_code == 200 and len(after.json()) == 3
        assert (await wait_pool_idle(running.app))["checked_out"] == 0
        engine = running.app.state.engine
        async with engine.connect() as conn:
            # SET LOCAL died with the request's transaction: the connection is back on the server default.
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar_one() == "30s"
        assert engine.pool.checkedin() == 1, "the connection that timed out was reused, not replaced"


async def test_every_read_strategy_is_limited_and_writes_are_not(
    citizen_db: Any, citizen_app: Any, settings_for: Any, table_locked: Any, wait_pool_idle: Any
) -> None:
    uid = citizen_db.seeded.showcase_user_id
    settings = settings_for(route_statement_timeout_ms=TIMEOUT_MS)
    async with citizen_app(citizen_db.url, settings) as running:
        client = running.client
        async with table_locked(citizen_db.url, "comments"):
            for strategy in ("lazy", "selectin", "single"):
                response = await client.get(f"/users/{uid}/posts", params={"strategy": strategy})
                assert response.status_code == 504, (strategy, response.text)
        # A write is not capped by the route timeout: it waits for the lock and then succeeds.
        async with table_locked(citizen_db.url, "users") as locker:
            pending = asyncio.create_task(client.post("/users", json={"name": "W", "email": "w-timeout@example.org"}))
            await asyncio.sleep(TIMEOUT_MS / 1000 * 2)  # the scenario: a window twice the read timeout
            assert not pending.done(), "the POST waited past the read timeout"
            await locker.execute("SELECT 1")
        response = await pending
        assert response.status_code == 201, response.text
        assert (await wait_pool_idle(running.app))["checked_out"] == 0
