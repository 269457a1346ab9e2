"""More slow requests than the pool can hold: the surplus is told 503 + Retry-After after ``pool_timeout``
(instead of queueing forever), the others finish, and the pool drains back to idle."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from pgpulse.db.health import pool_state

POOL_SIZE, MAX_OVERFLOW, POOL_TIMEOUT = 2, 1, 1.0
REQUESTS = 9
HOLD_S = 2.0


async def test_surplus_requests_get_503_with_retry_after_and_the_rest_complete(
    citizen_db: Any, citizen_app: Any, settings_for: Any, table_locked: Any, wait_pool_idle: Any, stuck_backends: Any
) -> None:
    uid = citizen_db.seeded.hot_user_ids[0]
    settings = settings_for(pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=POOL_TIMEOUT)
    capacity = POOL_SIZE + MAX_OVERFLOW
    async with citizen_app(citizen_db.url, settings, tcp=True) as running:
        client = running.client

        async def timed_get() -> tuple[int, float, str | None]:
            began = time.perf_counter()
            response = await client.get(f"/users/{uid}/posts/published")
            return response.status_code, time.perf_counter() - began, response.headers.get("retry-after")

        async with table_locked(citizen_db.url, "posts"):
            locked_at = time.monotonic()
            tasks = [asyncio.create_task(timed_get()) for _ in range(REQUESTS)]
            while (held := pool_state(running.app.state.engine))["checked_out"] < capacity:
                assert time.monotonic() < locked_at + POOL_TIMEOUT, f"the pool never filled up: {held}"
                await asyncio.sleep(0.01)
            # The scenario itself: the lock stays held past pool_timeout, so the surplus has been answered
            # (503) while the admitted requests still wait on the lock.
            await asyncio.sleep(HOLD_S - (time.monotonic() - locked_at))
        results = await asyncio.gather(*tasks)

        assert held["checked_out"] == capacity and held["overflow"] == MAX_OVERFLOW, held
        statuses = Counter(status for status, _, _ in results)
        assert statuses == {200: capacity, 503: REQUESTS - capacity}, statuses
        rejected = [(seconds, retry) for status, seconds, retry in results if status == 503]
        assert all(retry == "1" for _, retry in rejected)
        assert all(POOL_TIMEOUT * 0.9 <= seconds < HOLD_S for seconds, _ in rejected), rejected
        served = [seconds for status, seconds, _ in results if status == 200]
        assert all(seconds >= HOLD_S * 0.9 for seconds in served), "the admitted requests really waited"
        state = await wait_pool_idle(running.app)
        assert state["checked_out"] == 0, state
        health = (await client.get("/health/db")).json()
        assert health["status"] == "ok" and health["pool"]["checked_out"] == 0
    assert await stuck_backends(citizen_db.url) == []
