"""The database goes away under load (restart, killed backend): requests fail fast with a clean 503, the app
recovers on its own once the server is back, and no connection is leaked."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx

OUTAGE_S = 1.5
WORKERS = 8


async def _load(client: httpx.AsyncClient, paths: list[str], stop: asyncio.Event, log: list[Any]) -> None:
    i = 0
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        began = time.monotonic()
        response = await client.get(path)
        seconds = time.monotonic() - began
        log.append((began, seconds, response.status_code, response.headers.get("retry-after"), path))


async def _wait_for_answers(log: list[Any], after: float, timeout: float = 15.0) -> None:
    """Until every worker could have had one answer to a request sent after ``after`` (monotonic clock)."""
    deadline = time.monotonic() + timeout
    while sum(1 for entry in log if entry[0] > after) < WORKERS:
        assert time.monotonic() < deadline, f"fewer than {WORKERS} answers to requests sent after {after:.1f}"
        await asyncio.sleep(0.02)


async def test_database_restart_under_load_fails_fast_then_recovers_without_leaks(
    citizen_db: Any, citizen_app: Any, settings_for: Any, wait_pool_idle: Any, stuck_backends: Any
) -> None:
    seeded = citizen_db.seeded
    paths = [
        f"/users/{seeded.hot_user_ids[0]}/posts/published",
        f"/users/{seeded.showcase_user_id}/posts?strategy=selectin",
        f"/users/{seeded.showcase_user_id}/posts?strategy=single",
        f"/users/{seeded.showcase_user_id}",
    ]
    server = citizen_db.server
    async with citizen_app(citizen_db.url, settings_for(), tcp=True) as running:
        stop = asyncio.Event()
        log: list[Any] = []
        workers = [asyncio.create_task(_load(running.client, paths, stop, log)) for _ in range(WORKERS)]
        await _wait_for_answers(log, after=0.0)  # the load is running before the server goes away
        server.ephemeral = False  # stop() would delete an ephemeral cluster's data
        try:
            await asyncio.to_thread(server.stop, "fast")
            down_at = time.monotonic()  # every backend has exited: from here on nothing can succeed
            await asyncio.sleep(OUTAGE_S)  # the scenario: an outage of this length under load
            during = await running.client.get("/health/db")
            starting_at = time.monotonic()
            await asyncio.to_thread(server.start)
            up_at = time.monotonic()
        finally:
            server.ephemeral = True
        await _wait_for_answers(log, after=up_at + 0.5)  # requests sent after the restart have been answered
        stop.set()
        await asyncio.gather(*workers)
        after = await running.client.get("/health/db")

        statuses = Counter(entry[2] for entry in log)
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0, "the outage was seen"
        # began after the server was gone and finished before it was started again: no way to succeed
        outage = [entry for entry in log if down_at < entry[0] and entry[0] + entry[1] < starting_at]
        succeeded = [(began - down_at, seconds, path) for began, seconds, status, _, path in outage if status != 503]
        assert outage and not succeeded, (succeeded, starting_at - down_at)
        assert all(entry[3] == "1" for entry in log if entry[2] == 503), "503s carry Retry-After"
        slowest_outage = max(entry[1] for entry in outage)
        assert slowest_outage < 1.0, f"failing requests must fail fast, slowest took {slowest_outage:.2f} s"
        recovered = [entry[2] for entry in log if entry[0] > up_at + 0.5]
        assert recovered and all(status == 200 for status in recovered), Counter(recovered)
        assert during.status_code == 503 and during.json()["status"] == "unavailable"
        assert after.status_code == 200 and after.json()["pool"]["checked_out"] == 0
        assert (await wait_pool_idle(running.app))["checked_out"] == 0
    assert await stuck_backends(citizen_db.url) == []
    print(
        f"\nrestart under load: {len(log)} requests, {dict(statuses)}, outage p100 {slowest_outage * 1000:.0f} ms, "
        f"{len(outage)} requests during the outage"
    )


async def test_backend_killed_mid_request_is_one_clean_503_and_the_pool_recovers(
    citizen_db: Any, citizen_app: Any, settings_for: Any, table_locked: Any, wait_pool_idle: Any, blocked_pids: Any
) -> None:
    uid = citizen_db.seeded.hot_user_ids[0]
    async with citizen_app(citizen_db.url, settings_for(pool_size=2, max_overflow=0)) as running:
        client = running.client
        assert (await client.get(f"/users/{uid}/posts/published")).status_code == 200
        async with table_locked(citizen_db.url, "posts") as locker:
            request = asyncio.create_task(client.get(f"/users/{uid}/posts/published"))
            pid = None
            for _ in range(100):  # wait until the route's query is blocked on our lock
                pids = await blocked_pids(locker)
                if pids:
                    [pid] = pids
                    break
                await asyncio.sleep(0.02)
            assert pid, "the request's backend never blocked"
            assert await locker.fetchval("SELECT pg_terminate_backend($1)", pid)
            response = await asyncio.wait_for(request, 5)
        assert response.status_code == 503, response.text
        assert response.json()["detail"] == "database connection lost"  # the pooled connection was invalidated
        assert response.headers["retry-after"] == "1"
        for _ in range(5):  # pre-ping or invalidation: the dead connection never serves another request
            assert (await client.get(f"/users/{uid}/posts/published")).status_code == 200
        state = await wait_pool_idle(running.app)
        assert state["checked_out"] == 0
        check = await asyncpg.connect(citizen_db.url)
        try:
            alive = await check.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
        finally:
            await check.close()
        assert alive == 0
