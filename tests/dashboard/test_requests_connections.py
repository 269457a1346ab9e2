"""New connection per request on the Requests pages: CitizenApp on ``NullPool`` (``Settings(pool="null")``) with
the profiler's middleware feeding a ``RequestRing``, the dashboard mounted in the same app, real requests through
real uvicorn, the pages read in a real headless Chromium. Every request of a NullPool app opens its connection:
the Requests page marks each one (and the route in the stored window), the request page prints the finding and
its fix whole. The pooled app (the default ``QueuePool``) shows none of it: ``test_requests_citizenapp.py``.

The fix is printed with its quotes and braces (``connect_args={"statement_cache_size": 0}``); a pool named with
markup, quotes and braces shows as text.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy.pool import NullPool

from pgpulse.dashboard import RequestRing
from pgpulse.dashboard import app as pgpulse_dashboard
from pgpulse.dashboard.app import Dashboard
from pgpulse.demo.app import create_app
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.seed import SeedSpec, seed
from pgpulse.profiler import instrument, profile
from pgpulse.profiler.context import Record
from pgpulse.settings import Settings

from .conftest import body, cells, no_console_errors, open_page, serve, shoot, staff_cookie

STAFF_COOKIE, STAFF_TOKEN = "staff", "staff-token-2"
POSTS = "GET /users/{user_id}/posts"
# CitizenApp's engine is create_async_engine over asyncpg: the fix the profiler prints for it, whole
FIX = (
    "create_async_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True) instead of poolclass=NullPool "
    "(pool_size: the worker's concurrent requests); when many processes connect, PgBouncer in transaction mode "
    'between the processes and PostgreSQL (asyncpg behind PgBouncer < 1.21: connect_args={"statement_cache_size": 0})'
)
HOSTILE_POOL = '<script>window.__pwned=1</script> "q" {{ 7*7 }}'


@dataclass
class Unpooled:
    base: str
    store_url: str
    dashboard: Dashboard
    ring: RequestRing
    seen: list[Record]


def _drive(base: str, user_id: int) -> list[int]:
    with httpx.Client(base_url=base, timeout=60) as client:
        return [client.get(f"/users/{user_id}/posts", params={"strategy": "selectin"}).status_code for _ in range(3)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def unpooled(make_database: Callable[..., Awaitable[str]]) -> AsyncIterator[Unpooled]:
    url = await make_database("dashnullpool")
    store_url = await make_database("dashnullpoolstore")
    await upgrade_async(url)
    seeded = await seed(url, SeedSpec(users=3, posts=20, comments_per_post=1.0, hot_users=1, hot_share=0.5))
    assert seeded.showcase_user_id is not None
    ring = RequestRing(size=50)
    seen: list[Record] = []
    settings = Settings(profiler_enabled=True, pool="null")
    citizen = create_app(url, settings, on_record=[ring, seen.append])
    dashboard = pgpulse_dashboard(
        url, store_url, requests_ring=ring, auth=lambda request: request.cookies.get(STAFF_COOKIE) == STAFF_TOKEN
    )
    citizen.mount("/pgpulse", dashboard)
    server, thread, base = serve(citizen)
    try:
        assert await asyncio.to_thread(_drive, base, seeded.showcase_user_id) == [200, 200, 200]
        deadline = time.monotonic() + 20  # the hook runs once the response is out
        while len(ring.items()) < 3:
            assert time.monotonic() < deadline, f"the ring has {len(ring.items())} of 3 requests"
            await asyncio.sleep(0.02)
        yield Unpooled(base, store_url, dashboard, ring, seen)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 20)
        if dashboard.state.request_history is not None:
            await asyncio.to_thread(dashboard.state.request_history.close)


@pytest.fixture
def staff(browser: WebDriver, unpooled: Unpooled) -> Iterator[WebDriver]:
    with staff_cookie(browser, unpooled.base, STAFF_COOKIE, STAFF_TOKEN) as driver:
        yield driver


def test_the_profiler_judged_every_request_of_the_nullpool_app(unpooled: Unpooled) -> None:
    # what the pages below must show, from the profiler itself: one finding per request, one connection each
    app = [r for r in unpooled.seen if r.route_name() == "/users/{user_id}/posts"]
    assert len(app) == 3
    found = [c for r in app for c in r.connections]
    assert [(c.kind, c.count, c.pool_class, c.fix) for c in found] == [
        ("new_connection_per_request", 1, "NullPool", FIX)
    ] * 3


def test_the_requests_page_marks_every_request_of_the_nullpool_app(
    unpooled: Unpooled, staff: WebDriver, screenshots: Path
) -> None:
    open_page(staff, unpooled.base + "/pgpulse/requests", "Requests")
    header = [c.text for c in staff.find_elements(By.CSS_SELECTOR, "#recent thead th")]
    assert header[-3:] == ["N+1", "Unused eager", "New connections"]
    rows = staff.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
    # request, time, db time, queries (the user, their posts, the posts' comments), N+1, unused, new connections
    assert [[c[0], *c[3:]] for c in map(cells, rows)] == [[POSTS, "3", "0", "0", "1 NullPool"]] * 3
    marked = [r.find_elements(By.TAG_NAME, "td")[-1] for r in rows]
    assert [td.get_attribute("class") for td in marked] == ["warn"] * 3
    shoot(staff, screenshots, "requests-nullpool")
    no_console_errors(staff)


def test_the_request_page_prints_the_finding_and_its_fix_whole(
    unpooled: Unpooled, staff: WebDriver, screenshots: Path
) -> None:
    item = unpooled.ring.items()[-1]
    open_page(staff, unpooled.base + f"/pgpulse/requests/{item.id}", "/users/{user_id}/posts")
    assert staff.find_element(By.ID, "new-connection-count").text == "1"
    found = staff.find_elements(By.CSS_SELECTOR, "#new-connections > li")
    assert len(found) == 1
    headline = found[0].find_element(By.TAG_NAME, "strong").text
    assert headline.startswith("New connection per request: 1 new connection, ")
    assert headline.endswith(" ms spent connecting (pool 'default': NullPool reuses none)")
    # the same request's record (the hook saw the dashboard's own page views too: they are not the app's)
    record = [r for r in unpooled.seen if r.route_name() == "/users/{user_id}/posts"][-1]
    assert headline == record.connections[0].describe().splitlines()[0]
    # the fix as the profiler wrote it, quotes and braces shown as text, nothing cut
    assert found[0].find_element(By.TAG_NAME, "pre").text == f"fix:   {FIX}"
    assert staff.find_elements(By.ID, "nplusone") == [] and staff.find_elements(By.ID, "unused-eager") == []
    shoot(staff, screenshots, "request-nullpool")
    no_console_errors(staff)


async def test_the_fix_is_escaped_in_the_html(unpooled: Unpooled) -> None:
    item = unpooled.ring.items()[0]
    async with httpx.AsyncClient(base_url=unpooled.base, timeout=60, cookies={STAFF_COOKIE: STAFF_TOKEN}) as client:
        page = (await client.get(f"/pgpulse/requests/{item.id}")).text
    assert "connect_args={&#34;statement_cache_size&#34;: 0})</pre>" in page
    assert '{"statement_cache_size"' not in page  # never a raw quote inside the markup
    assert "(pool &#39;default&#39;: NullPool reuses none)" in page


async def test_the_store_counts_the_routes_new_connections(unpooled: Unpooled) -> None:
    history = unpooled.dashboard.state.request_history
    assert history is not None
    history.flush_soon()
    conn = await asyncpg.connect(unpooled.store_url)
    try:
        deadline = time.monotonic() + 30
        while (stored := await conn.fetchval("SELECT count(*) FROM pgpulse_history.request")) < 3:
            assert time.monotonic() < deadline, f"{stored} of 3 requests in the store"
            await asyncio.sleep(0.1)
        rows = await conn.fetch("SELECT route, nplusone, connections, findings FROM pgpulse_history.request")
    finally:
        await conn.close()
    assert [(r["route"], r["nplusone"], r["connections"]) for r in rows] == [("/users/{user_id}/posts", 0, 1)] * 3
    findings = json.loads(rows[0]["findings"])
    assert [(f["kind"], f["count"], f["pool_class"], f["fix"]) for f in findings] == [
        ("new_connection_per_request", 1, "NullPool", FIX)
    ]
    async with httpx.AsyncClient(base_url=unpooled.base, timeout=60, cookies={STAFF_COOKIE: STAFF_TOKEN}) as client:
        page = (await client.get("/pgpulse/requests")).text
    table = page[page.index('id="stored-routes"') :]
    # requests, mean, slowest, most queries, N+1, unused eager, new connections
    assert '<td class="n">3</td><td class="n">0</td><td class="n">0</td><td class="n warn">3</td>' in table


def _hostile_ring(database_url: str) -> RequestRing:
    """A request on a NullPool engine whose pool name (the user's own instrument() argument) carries markup."""
    ring = RequestRing(size=5)
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=NullPool)
    instrument(engine, pool_name=HOSTILE_POOL)
    try:
        with profile(route="/hostile") as record, engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).all()
        record.method = "GET"
        ring.add(record)
    finally:
        engine.dispose()
    return ring


async def test_a_pool_name_with_markup_quotes_and_braces_shows_as_text(
    make_database: Callable[..., Awaitable[str]], browser: WebDriver
) -> None:
    url = await make_database("dashhostilepool")
    ring = await asyncio.to_thread(_hostile_ring, url)
    (item,) = ring.items()
    assert item.connections[0].pool == HOSTILE_POOL
    dashboard = pgpulse_dashboard(url, requests_ring=ring, production=False)
    server, thread, base = serve(dashboard)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            page = (await client.get(f"/requests/{item.id}")).text
        assert "<script" not in page.lower()
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt; &#34;q&#34; {{ 7*7 }}" in page
        await asyncio.to_thread(open_page, browser, f"{base}/requests/{item.id}", "/hostile")
        text = await asyncio.to_thread(body, browser)
        assert f"(pool {HOSTILE_POOL!r}: NullPool reuses none)" in text
        assert 'connect_args={"prepare_threshold": None})' in text  # psycopg's part of the fix
        assert browser.execute_script("return window.__pwned === undefined") is True
        no_console_errors(browser)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 20)
        await dashboard.close()
