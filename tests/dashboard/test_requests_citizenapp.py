"""The Requests page as a user gets it: CitizenApp (FastAPI + async SQLAlchemy) with the profiler's middleware
feeding a ``RequestRing`` through ``on_record``, the dashboard mounted in the same app behind an auth check,
real requests through real uvicorn, and the pages read in a real headless Chromium.

Driven: the lazy N+1 route (52 queries: the user, their 50 posts, then each post's comments one by one), the
selectin route (3 queries), a route that eager-loads ``User.posts`` and reads only the name (an unused eager
load; run twice: the profiler locates the query's line from the shape's second run on), and a POST whose body
carries a secret, with another secret in the lazy request's query string. The profiler keeps parameters
(``log_parameters``), so the test can show that the secrets reached it and never a page.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from pgpulse.dashboard import RequestRing
from pgpulse.dashboard import app as pgpulse_dashboard
from pgpulse.dashboard.app import Dashboard
from pgpulse.demo.app import create_app
from pgpulse.demo.deps import SessionDep
from pgpulse.demo.migrate import upgrade_async
from pgpulse.demo.models import User
from pgpulse.demo.seed import SHOWCASE_COMMENTS, SeedSpec, seed
from pgpulse.profiler.context import Record
from pgpulse.settings import Settings

from .conftest import cells, no_console_errors, open_page, serve, shoot, staff_cookie

STAFF_COOKIE, STAFF_TOKEN = "staff", "staff-token-1"
SECRET_QUERY_STRING = "sekrit-qs-51"
SECRET_BODY = "sekrit-body-52"
LAZY, SELECTIN, NAME, CREATE = (
    "GET /users/{user_id}/posts",
    "GET /users/{user_id}/posts",
    "GET /users/{user_id}/name",
    "POST /users",
)


def add_unused_eager_route(citizen: FastAPI) -> None:
    """A route the way they get written: it eager-loads the posts "in case", then returns only the name."""

    @citizen.get("/users/{user_id}/name")
    async def user_name(user_id: int, session: SessionDep) -> dict[str, str]:
        stmt = select(User).where(User.id == user_id).options(selectinload(User.posts))
        user = (await session.scalars(stmt)).one()
        return {"name": user.name}


@dataclass
class Mounted:
    base: str
    store_url: str
    dashboard: Dashboard
    ring: RequestRing
    seen: list[Record]  # every record the profiler closed, parameters included (a second hook, the test's own)
    user_id: int  # CitizenApp's showcase user: exactly 50 posts


def _drive(base: str, user_id: int) -> list[tuple[str, int]]:
    """The application's traffic, in order; returns (method path, status) for each."""
    out = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for method, path, kwargs in (
            ("GET", f"/users/{user_id}/posts", {"params": {"strategy": "lazy", "api_key": SECRET_QUERY_STRING}}),
            ("GET", f"/users/{user_id}/posts", {"params": {"strategy": "selectin"}}),
            ("GET", f"/users/{user_id}/name", {}),
            ("GET", f"/users/{user_id}/name", {}),
            ("POST", "/users", {"json": {"name": SECRET_BODY, "email": f"{SECRET_BODY}@example.org"}}),
        ):
            response = client.request(method, path, **kwargs)
            out.append((f"{method} {path}", response.status_code))
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mounted(make_database: Callable[..., Awaitable[str]]) -> AsyncIterator[Mounted]:
    url = await make_database("dashcitizen")
    store_url = await make_database("dashcitizenstore")  # request history: the writer migrates it on first use
    await upgrade_async(url)
    seeded = await seed(url, SeedSpec(users=3, posts=20, comments_per_post=1.0, hot_users=1, hot_share=0.5))
    assert seeded.showcase_user_id is not None
    ring = RequestRing(size=50)
    seen: list[Record] = []
    settings = Settings(profiler_enabled=True, log_parameters=True, pool_size=2, max_overflow=0)
    citizen = create_app(url, settings, on_record=[ring, seen.append])
    add_unused_eager_route(citizen)
    dashboard = pgpulse_dashboard(
        url, store_url, requests_ring=ring, auth=lambda request: request.cookies.get(STAFF_COOKIE) == STAFF_TOKEN
    )
    citizen.mount("/pgpulse", dashboard)
    server, thread, base = serve(citizen)
    try:
        statuses = await asyncio.to_thread(_drive, base, seeded.showcase_user_id)
        assert [s for _, s in statuses] == [200, 200, 200, 200, 201], statuses
        deadline = time.monotonic() + 20  # the hook runs once the response is out: poll for the fifth record
        while len(ring.items()) < 5:
            assert time.monotonic() < deadline, f"the ring has {len(ring.items())} of 5 requests"
            await asyncio.sleep(0.02)
        yield Mounted(base, store_url, dashboard, ring, seen, seeded.showcase_user_id)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 20)
        # the pools lived on uvicorn's loop, gone with it; the store writer is a thread of its own
        if dashboard.state.request_history is not None:
            await asyncio.to_thread(dashboard.state.request_history.close)


@pytest.fixture
def staff(browser: WebDriver, mounted: Mounted) -> Iterator[WebDriver]:
    with staff_cookie(browser, mounted.base, STAFF_COOKIE, STAFF_TOKEN) as driver:
        yield driver


async def test_the_dashboard_mounted_in_the_app_answers_only_to_staff(mounted: Mounted) -> None:
    async with httpx.AsyncClient(base_url=mounted.base, timeout=60) as client:
        denied = await client.get("/pgpulse/requests")
    async with httpx.AsyncClient(base_url=mounted.base, timeout=60, cookies={STAFF_COOKIE: "guess"}) as client:
        wrong = await client.get("/pgpulse/requests")
    async with httpx.AsyncClient(base_url=mounted.base, timeout=60, cookies={STAFF_COOKIE: STAFF_TOKEN}) as client:
        allowed = await client.get("/pgpulse/requests")
    assert (denied.status_code, denied.text) == (403, "forbidden")
    assert (wrong.status_code, allowed.status_code) == (403, 200)


def test_requests_page_lists_the_apps_requests_most_queries_and_slowest_first(
    mounted: Mounted, staff: WebDriver, screenshots: Path
) -> None:
    open_page(staff, mounted.base + "/pgpulse/requests", "Requests")
    most = [cells(r) for r in staff.find_elements(By.CSS_SELECTOR, "#most-queries tbody tr")]
    # request, time, db time, queries, N+1, unused eager, new connections: lazy 2 + 50, selectin 3, each name 2, the
    # POST 2; the pool opened its connections while it filled up (pool_size=2), which is no finding
    assert [[c[0], *c[3:]] for c in most] == [
        [LAZY, "52", "1", "0", "0"],
        [SELECTIN, "3", "0", "0", "0"],
        [NAME, "2", "0", "1", "0"],
        [NAME, "2", "0", "1", "0"],
        [CREATE, "2", "0", "0", "0"],
    ]
    assert sum(r.new_connections for r in mounted.seen) >= 1  # it did open connections: they were not judged churn
    slowest = [cells(r)[0] for r in staff.find_elements(By.CSS_SELECTOR, "#slowest tbody tr")]
    by_time = sorted(mounted.ring.items(), key=lambda r: -r.duration_ms)  # the spec: slowest first
    assert slowest == [f"{r.method} {r.route}" for r in by_time]
    recent = [cells(r)[0] for r in staff.find_elements(By.CSS_SELECTOR, "#recent tbody tr")]
    assert recent == [CREATE, NAME, NAME, SELECTIN, LAZY]  # newest first; the dashboard's own pages left out
    shoot(staff, screenshots, "requests")
    no_console_errors(staff)


def test_the_lazy_request_shows_its_52_queries_and_the_n_plus_one_with_line_and_fix(
    mounted: Mounted, staff: WebDriver, screenshots: Path
) -> None:
    open_page(staff, mounted.base + "/pgpulse/requests", "Requests")
    staff.find_element(By.CSS_SELECTOR, "#most-queries tbody tr:first-child a").click()
    WebDriverWait(staff, 20).until(ec.presence_of_element_located((By.ID, "nplusone")))
    assert staff.find_element(By.ID, "query-count").text == "52"
    findings = staff.find_elements(By.CSS_SELECTOR, "#nplusone > li")
    assert len(findings) == 1
    headline = findings[0].find_element(By.TAG_NAME, "strong").text
    assert headline.startswith("N+1: lazy load of Post.comments (on objects loaded by User.posts) ran 50 times at ")
    line = _line_of("comments = await post.awaitable_attrs.comments")
    assert headline.endswith(f"demo/loading.py:{line} in load_lazy()")
    detail = findings[0].find_element(By.TAG_NAME, "pre").text.splitlines()
    assert detail[0] == "code:  comments = await post.awaitable_attrs.comments"
    assert detail[-1].startswith("fix:   ") and "selectinload(User.posts).selectinload(Post.comments)" in detail[-1]
    # one line per query (read whole: one browser round trip, not one per cell): #, statement, time, rows, relationship
    rows = staff.find_element(By.CSS_SELECTOR, "#request-queries tbody").text.splitlines()
    assert len(rows) == 52
    assert [r.startswith(f"{i} SELECT ") for i, r in enumerate(rows, 1)] == [True] * 52
    # each post's comments: one lazy load of Post.comments, its own time, the showcase posts' 10 rows each
    assert sum(r.endswith(f" ms {SHOWCASE_COMMENTS} Post.comments") for r in rows) == 50
    shoot(staff, screenshots, "request")
    no_console_errors(staff)


def test_the_unused_eager_load_shows_the_option_the_line_and_the_fix(
    mounted: Mounted, staff: WebDriver, screenshots: Path
) -> None:
    second = [r for r in mounted.ring.items() if r.route == "/users/{user_id}/name"][1]
    open_page(staff, mounted.base + f"/pgpulse/requests/{second.id}", "/users/{user_id}/name")
    found = staff.find_elements(By.CSS_SELECTOR, "#unused-eager > li")
    assert len(found) == 1
    assert found[0].find_element(By.TAG_NAME, "strong").text == (
        "selectinload(User.posts) loaded User.posts, which nothing read"
    )
    detail = found[0].find_element(By.TAG_NAME, "pre").text.splitlines()
    where = f"{Path(__file__)}:{_line_of('user = (await session.scalars(stmt)', Path(__file__))} in user_name()"
    assert detail[:2] == [f"where: {where}", "code:  user = (await session.scalars(stmt)).one()"]
    assert detail[-1] == (
        "fix:   remove selectinload(User.posts) from the query (or use noload(User.posts) / load_only() if only "
        "columns are read)"
    )
    assert staff.find_elements(By.ID, "nplusone") == []
    shoot(staff, screenshots, "request-unused")
    no_console_errors(staff)


def test_no_page_shows_the_requests_parameters(mounted: Mounted, staff: WebDriver) -> None:
    # the profiler saw both secrets (it keeps parameters here, and the scope holds the query string)...
    seen = " ".join(repr(q.parameters) for r in mounted.seen for q in r.queries)
    assert SECRET_BODY in seen
    assert any(SECRET_QUERY_STRING.encode() in (r.scope or {}).get("query_string", b"") for r in mounted.seen)
    # ...and no page shows either
    pages = ["/pgpulse/requests"] + [f"/pgpulse/requests/{r.id}" for r in mounted.ring.items()]
    for page in pages:
        open_page(staff, mounted.base + page, "")
        source = staff.page_source
        assert SECRET_BODY not in source and SECRET_QUERY_STRING not in source, page
        # a pooled app: no request page lists a new-connection finding (the false-positive direction)
        assert staff.find_elements(By.ID, "new-connections") == [], page
    create = next(r for r in mounted.ring.items() if r.method == "POST")
    assert create.queries[0].statement.startswith("INSERT INTO users (name, email) VALUES ($1::VARCHAR")
    assert len(mounted.ring.items()) == 5  # the dashboard's own page views never entered the ring


def _line_of(text: str, path: Path | None = None) -> int:
    """The 1-based line of ``text`` in ``path`` (default: CitizenApp's loading module)."""
    if path is None:
        import pgpulse.demo.loading as loading

        path = Path(loading.__file__)
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


async def test_the_requests_are_kept_in_the_store_without_their_parameters(mounted: Mounted) -> None:
    history = mounted.dashboard.state.request_history
    assert history is not None
    history.flush_soon()
    conn = await asyncpg.connect(mounted.store_url)
    try:
        deadline = time.monotonic() + 30
        while (stored := await conn.fetchval("SELECT count(*) FROM pgpulse_history.request")) < 5:
            assert time.monotonic() < deadline, f"{stored} of 5 requests in the store"
            await asyncio.sleep(0.1)
        rows = await conn.fetch(
            "SELECT method, route, query_count, nplusone, unused, connections, findings FROM pgpulse_history.request"
            " ORDER BY request_id"
        )
        everything = await conn.fetchval("SELECT string_agg(r::text, ' ') FROM pgpulse_history.request r")
    finally:
        await conn.close()
    assert [tuple(r.values())[:6] for r in rows] == [
        ("GET", "/users/{user_id}/posts", 52, 1, 0, 0),
        ("GET", "/users/{user_id}/posts", 3, 0, 0, 0),
        ("GET", "/users/{user_id}/name", 2, 0, 1, 0),
        ("GET", "/users/{user_id}/name", 2, 0, 1, 0),
        ("POST", "/users", 2, 0, 0, 0),
    ]
    lazy = json.loads(rows[0]["findings"])
    assert [(f["kind"], f["line"]) for f in lazy] == [("n_plus_one", "comments = await post.awaitable_attrs.comments")]
    assert "selectinload(User.posts).selectinload(Post.comments)" in lazy[0]["fix"]
    assert SECRET_BODY not in everything and SECRET_QUERY_STRING not in everything
    # the Requests page sums the stored window per route, slowest first
    async with httpx.AsyncClient(base_url=mounted.base, timeout=60, cookies={STAFF_COOKIE: STAFF_TOKEN}) as client:
        page = (await client.get("/pgpulse/requests")).text
    table = page[page.index('id="stored-routes"') :]
    routes = re.findall(r"<tr><td>(GET|POST) ([^<]+)</td><td class=\"n\">(\d+)</td>", table)
    assert routes[0] == ("GET", "/users/{user_id}/posts", "2")  # the lazy request is the slowest stored
    assert sorted(routes) == [
        ("GET", "/users/{user_id}/name", "2"),
        ("GET", "/users/{user_id}/posts", "2"),
        ("POST", "/users", "1"),
    ]
