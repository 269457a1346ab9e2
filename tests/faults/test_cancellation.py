"""Requests cancelled while they wait on the database (1,000 of them) and clients that hang up mid-query:
every connection goes back to the pool or is discarded, none is leaked, no backend is left in a transaction."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from typing import Any

import httpx

from pgpulse.db.health import pool_state

POOL_SIZE, MAX_OVERFLOW = 4, 2
MID_QUERY_BATCHES = 100  # x (POOL_SIZE + MAX_OVERFLOW) = 600 cancellations of requests blocked in a query
ANYWHERE = 400  # cancelled at a random moment of a normal request: checkout, ping, query, serialisation
# (some requests finish before their random cancel lands; we keep going until 400 were really cancelled)
HANG_UPS = 25  # real TCP disconnects (0.2 s client timeout each)


async def _cancel(task: asyncio.Task[Any]) -> str:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "completed"


async def test_a_thousand_cancellations_leak_no_connection(
    citizen_db: Any,
    citizen_app: Any,
    settings_for: Any,
    table_locked: Any,
    wait_pool_idle: Any,
    stuck_backends: Any,
    blocked_pids: Any,
) -> None:
    seeded = citizen_db.seeded
    capacity = POOL_SIZE + MAX_OVERFLOW
    path = f"/users/{seeded.hot_user_ids[0]}/posts/published"
    paths = [path, f"/users/{seeded.showcase_user_id}/posts?strategy=lazy", f"/users/{seeded.showcase_user_id}"]
    rng = random.Random(7)
    outcomes: Counter[str] = Counter()
    settings = settings_for(pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=5.0)
    began = time.perf_counter()
    async with citizen_app(citizen_db.url, settings) as running:
        client = running.client
        async with table_locked(citizen_db.url, "posts") as locker:
            for batch in range(MID_QUERY_BATCHES):
                tasks = [asyncio.create_task(client.get(path)) for _ in range(capacity)]
                deadline = time.monotonic() + 5
                while len(await blocked_pids(locker)) < capacity:  # every request is inside its query now
                    assert time.monotonic() < deadline, f"batch {batch}: requests never reached the database"
                    await asyncio.sleep(0.002)
                for task in tasks:
                    outcomes["mid-query " + await _cancel(task)] += 1
        for _ in range(ANYWHERE):
            if outcomes["anywhere cancelled"] >= ANYWHERE:
                break
            tasks = [asyncio.create_task(client.get(rng.choice(paths))) for _ in range(4)]
            await asyncio.sleep(rng.uniform(0, 0.03))
            for task in tasks:
                outcomes["anywhere " + await _cancel(task)] += 1

        state = await wait_pool_idle(running.app)
        assert state["checked_out"] == 0, state
        assert state["checked_in"] <= capacity, state
        for p in paths:  # the pool still serves: no half-dead connection was handed back
            assert (await client.get(p)).status_code == 200
        assert pool_state(running.app.state.engine)["checked_out"] == 0
    assert await stuck_backends(citizen_db.url) == []
    total = sum(outcomes.values())
    assert outcomes["mid-query cancelled"] == MID_QUERY_BATCHES * capacity
    assert outcomes["anywhere cancelled"] >= ANYWHERE, outcomes
    assert outcomes["mid-query cancelled"] + outcomes["anywhere cancelled"] >= 1000
    seconds = time.perf_counter() - began
    print(f"\n{total} requests cancelled (mid-query or at random) in {seconds:.1f} s: {dict(outcomes)}; pool {state}")


async def test_clients_hanging_up_mid_query_over_tcp_leak_nothing(
    citizen_db: Any,
    citizen_app: Any,
    settings_for: Any,
    table_locked: Any,
    wait_pool_idle: Any,
    stuck_backends: Any,
    blocked_pids: Any,
) -> None:
    """uvicorn does not cancel a handler when its client disconnects; CitizenApp's middleware does: the query
    stops although the lock it waits on is still held, and the connection comes back."""
    uid = citizen_db.seeded.hot_user_ids[0]
    settings = settings_for(pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=10.0)
    async with citizen_app(citizen_db.url, settings, tcp=True) as running:
        hung_up = 0
        async with table_locked(citizen_db.url, "posts") as locker:
            async with httpx.AsyncClient(base_url=running.base_url, timeout=0.2) as impatient:
                for _ in range(HANG_UPS):
                    with contextlib.suppress(httpx.TimeoutException):
                        await impatient.get(f"/users/{uid}/posts/published")
                        continue
                    hung_up += 1
            # CitizenApp cancels a request whose client is gone (demo/disconnect.py): its query stops
            # while the lock is still held (tests/safety/test_app_bounds.py has the precise version)
            deadline = time.monotonic() + 10
            while await blocked_pids(locker):
                assert time.monotonic() < deadline, "abandoned requests still wait in their queries"
                await asyncio.sleep(0.05)
        assert hung_up == HANG_UPS
        state = await wait_pool_idle(running.app, timeout=30)
        assert state["checked_out"] == 0, state
        assert (await running.client.get(f"/users/{uid}/posts/published")).status_code == 200
    assert await stuck_backends(citizen_db.url) == []
