"""The profiler on an app shaped like real ones (tests/profiler/apps): no false N+1 on eager loading, the
right relationship under concurrency, a fix for self-referential walks that is verified by running it, full
route templates with the method, the application's own line (or FastAPI's serialization, named), call sites
kept apart, and the engine's configuration honoured by the middleware."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import selectinload
from structlog.testing import capture_logs
from tests.profiler.apps import shop_app
from tests.profiler.apps.shop_models import ITEMS, Category, Item, User

from pgpulse.db.urls import async_url
from pgpulse.profiler import instrument, profile, uninstrument
from pgpulse.profiler.metrics import render
from pgpulse.profiler.sites import is_library
from pgpulse.profiler.statements import shape

APP_FILE = shop_app.__file__
THIS_FILE = __file__


def line_of(marker: str, path: str = APP_FILE) -> int:
    with open(path) as source:
        for number, line in enumerate(source.read().splitlines(), 1):
            if line.rstrip().endswith(f"# {marker}"):
                return number
    raise AssertionError(marker)


@asynccontextmanager
async def client_for(shop: Any, root_path: str = "", **middleware: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = shop_app.create_app(shop.async_engine, shop.sync_engine, **middleware)
    transport = httpx.ASGITransport(app=app, root_path=root_path)  # the server's root path (behind a proxy)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        yield client


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_selectinload_over_more_parents_than_one_in_list_chunk_is_no_n_plus_one(shop: Any) -> None:
    async with client_for(shop) as client:
        with capture_logs() as logs, profile() as record:
            response = await client.get("/api/v1/items/tagged")
    assert response.json() == ITEMS  # every item has one tag
    batches = [q for q in record.queries if q.load is not None and q.load.kind == "batch"]
    assert len(batches) == 3  # 1200 parents → IN-list chunks of 500, 500, 200
    assert record.query_count == 4 and record.findings == [] and events(logs, "n_plus_one") == []


async def test_selectinload_recursion_depth_is_no_n_plus_one(shop: Any) -> None:
    with profile() as record:
        async with AsyncSession(shop.async_engine) as session:
            stmt = select(Category).where(Category.id == 1)
            root = (await session.scalars(stmt.options(selectinload(Category.children, recursion_depth=5)))).one()
            assert sum(len(g.children) for c in root.children for g in c.children) == 27
    assert record.findings == []
    assert record.query_count == 1 + 4  # root, then one batch per level (the 4th finds no children)


def test_long_in_lists_are_shown_as_their_shape() -> None:
    placeholders = ", ".join(f"${i}::INTEGER" for i in range(1, 501))
    statement = f"SELECT tags.id FROM tags WHERE tags.id IN ({placeholders}) AND tags.name <> 'x'"
    assert shape(statement) == "SELECT tags.id FROM tags WHERE tags.id IN (… 500 values …) AND tags.name <> $501"
    assert shape("SELECT a FROM t WHERE a IN ($1, $2)") == "SELECT a FROM t WHERE a IN ($1, $2)"


async def test_concurrent_sessions_in_one_request_keep_their_own_relationship(shop: Any) -> None:
    async with client_for(shop) as client:
        with capture_logs() as logs:
            response = await client.get("/api/v1/gather")
    assert response.status_code == 200
    found = {(e["relationship"], e["count"], e["source"].rsplit(":", 1)[1]) for e in events(logs, "n_plus_one")}
    assert found == {
        ("Item.tags", 9, f"{line_of('GATHER-TAGS')} in tags_of_items()"),
        ("User.items", 7, f"{line_of('GATHER-ITEMS')} in items_of_users()"),
    }


async def test_self_referential_walk_gets_a_fix_that_removes_the_n_plus_one(shop: Any) -> None:
    async with client_for(shop) as client:
        with profile() as record:
            assert (await client.get("/admin/categories/1/tree")).json() == 27
    [finding] = record.findings
    assert finding.relationship == "Category.children" and finding.loaded_via == "Category.children"
    assert finding.count == 1 + 3 + 9 and finding.levels == 3
    assert finding.site is not None and finding.site.lineno == line_of("TREE-WALK")
    option = finding.fix.split(" on the query")[0]
    assert option == ".options(selectinload(Category.children, recursion_depth=3))"
    # Apply the proposed fix, as printed, to the query that loads the root, and walk the same three levels.
    fixed_query = eval(
        "select(Category).where(Category.id == 1)" + option, {"select": select, "Category": Category, **_loaders()}
    )
    with profile() as fixed:
        async with AsyncSession(shop.async_engine) as session:
            root = (await session.scalars(fixed_query)).one()
            leaves = [leaf.name for c in root.children for g in c.children for leaf in g.children]
    assert len(leaves) == 27
    assert fixed.findings == [] and fixed.query_count == 1 + 4  # the root, one batch per level, the leaves' (empty)


def _loaders() -> dict[str, Any]:
    return {"selectinload": selectinload}


async def test_route_labels_are_full_templates_with_the_method(shop: Any) -> None:
    async with client_for(shop, root_path="/shop") as client:
        with capture_logs() as logs:
            # ASGI: the path includes root_path (Starlette strips it to route)
            assert (await client.get("/shop/api/v1/users/3/items")).status_code == 200
            assert (await client.get("/shop/admin/categories/1/tree")).status_code == 200
            for path in ("/shop/nope/1", "/shop/nope/2", "/shop/api/v1/users/3/nothing"):
                assert (await client.get(path)).status_code == 404
    [tree] = events(logs, "n_plus_one")
    assert tree["route"] == "/shop/admin/categories/{category_id}/tree" and tree["method"] == "GET"
    exposition = render().decode()
    assert 'pgpulse_db_queries_per_request_count{method="GET",route="/shop/api/v1/users/{user_id}/items"}' in (
        exposition
    )
    assert 'pgpulse_nplusone_findings_total{method="GET",relationship="Category.children",' in exposition
    assert 'route="/shop/admin/categories/{category_id}/tree"' in exposition
    assert 'pgpulse_db_queries_per_request_count{method="GET",route="<unmatched>"}' in exposition
    assert "/nope" not in exposition and "/nothing" not in exposition


def test_library_code_is_whatever_is_installed_not_a_list_of_names() -> None:
    import sqlite3
    import threading

    import pydantic
    import sqlalchemy.orm.session
    import structlog

    for module in (threading, sqlite3, sqlalchemy.orm.session, pydantic, structlog):
        assert is_library(module.__file__ or ""), module
    assert not is_library(THIS_FILE) and not is_library(APP_FILE)
    assert is_library("<frozen importlib._bootstrap>")
    assert not is_library(os.path.join(os.path.dirname(THIS_FILE), "my_site_packages_helper.py"))


async def test_lazy_loads_during_response_serialization_say_so(shop: Any) -> None:
    async with client_for(shop) as client:
        with capture_logs() as logs, profile() as record:
            response = await client.get("/api/v1/items/serialized")
    assert [item["owner"]["id"] for item in response.json()] == [1 + i % 11 for i in range(1, 11)]
    [finding] = record.findings
    assert finding.relationship == "Item.owner" and finding.count == 10
    assert finding.during_serialization == "items_serialized() with response_model=list[ItemOut]"
    assert finding.fix == (
        ".options(selectinload(Item.owner)) on the query that loads the Item objects in items_serialized()"
    )
    assert finding.site is not None and finding.site.filename == ""  # no application frame: not threading.py
    assert "during FastAPI's response serialization, after items_serialized() with response_model=list[ItemOut]" in (
        finding.describe()
    )
    [event] = events(logs, "n_plus_one")
    assert event["source"] == "FastAPI response serialization" and "threading" not in repr(event)


async def test_the_auth_dependency_is_not_counted_into_the_lazy_load_n_plus_one(shop: Any) -> None:
    async with client_for(shop) as client:
        with capture_logs() as logs, profile() as record:
            assert (await client.get("/api/v1/items/owners")).status_code == 200
    assert record.query_count == 1 + 1 + 8  # auth's get(User 1), the items, 8 owners (2..9)
    [event] = events(logs, "n_plus_one")
    assert event["relationship"] == "Item.owner" and event["count"] == 8
    assert event["source"] == f"{APP_FILE}:{line_of('OWNER-LAZY')} in item_owners()"


async def test_one_shape_from_two_call_sites_is_two_findings(shop: Any) -> None:
    async with AsyncSession(shop.async_engine) as session:
        with profile() as record:
            for uid in range(1, 7):
                await session.execute(select(User.name).where(User.id == uid))  # SITE-A
            for uid in range(1, 7):
                await session.execute(select(User.name).where(User.id == uid))  # SITE-B
    found = sorted((f.site.lineno, f.count) for f in record.findings if f.site is not None)
    assert found == [(line_of("SITE-A", THIS_FILE), 6), (line_of("SITE-B", THIS_FILE), 6)]


async def test_the_engine_threshold_is_honoured_by_the_middleware(shop: Any) -> None:
    engine = create_async_engine(async_url(shop.url))
    instrument(engine, threshold=3)
    try:
        app = shop_app.create_app(engine, shop.sync_engine)  # PgPulseMiddleware with its defaults
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            with capture_logs() as logs:
                assert (await client.get("/api/v1/gather")).status_code == 200
        assert sorted(e["count"] for e in events(logs, "n_plus_one")) == [7, 9]
        async with AsyncSession(engine) as session:
            with profile() as record:
                for item in (await session.scalars(select(Item).where(Item.id <= 3))).all():
                    await item.awaitable_attrs.owner
        assert [(f.relationship, f.count) for f in record.findings] == [("Item.owner", 3)]
    finally:
        uninstrument(engine)
        await engine.dispose()
