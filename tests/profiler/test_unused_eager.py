"""Unused eager loads: an eager-load option whose relationship nothing read during the request is reported
with the option, the query, the line and the fix — and never on the shapes that fool Bullet and nplusone."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload, subqueryload
from structlog.testing import capture_logs
from tests.profiler.apps import shop_app
from tests.profiler.apps.shop_models import Item, User

from pgpulse.profiler import profile
from pgpulse.profiler.unused import unused_shapes

THIS_FILE = __file__


def line_of(marker: str, path: str = THIS_FILE) -> int:
    with open(path) as source:
        for number, line in enumerate(source.read().splitlines(), 1):
            if line.rstrip().endswith(f"# {marker}"):
                return number
    raise AssertionError(marker)


async def get(shop: Any, path: str) -> tuple[httpx.Response, list[dict[str, Any]]]:
    app = shop_app.create_app(shop.async_engine, shop.sync_engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        with capture_logs() as logs:
            response = await client.get(path)
    return response, logs


def of(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_an_option_nothing_reads_is_reported_with_query_line_and_fix(shop: Any) -> None:
    unused_shapes.clear()  # whatever ran before: this shape has not been reported yet
    response, first = await get(shop, "/api/v1/items/unused-tags")
    assert response.status_code == 200
    [unlocated] = of(first, "unused_eager_load")  # no stack walk until the shape has been reported once…
    assert unlocated["option"] == "selectinload(Item.tags)" and unlocated["source"] is None
    response, logs = await get(shop, "/api/v1/items/unused-tags")
    [event] = of(logs, "unused_eager_load")  # …then its line is found
    assert event["option"] == "selectinload(Item.tags)" and event["relationship"] == "Item.tags"
    assert event["route"] == "/api/v1/items/unused-tags" and event["method"] == "GET"
    assert event["source"] == f"{shop_app.__file__}:{line_of('UNUSED-TAGS', shop_app.__file__)} in unused_tags()"
    assert event["statement"].startswith("SELECT items.id, items.title, items.owner_id FROM items WHERE items.id <=")
    assert event["fix"] == (
        "remove selectinload(Item.tags) from the query "
        "(or use noload(Item.tags) / load_only() if only columns are read)"
    )
    assert of(logs, "n_plus_one") == []


async def test_joined_and_subquery_options_too(shop: Any) -> None:
    with profile() as record:
        async with AsyncSession(shop.async_engine) as session:
            items = (await session.scalars(select(Item).where(Item.id <= 5).options(joinedload(Item.owner)))).all()
            users = (await session.scalars(select(User).where(User.id <= 2).options(subqueryload(User.items)))).all()
            assert [i.title for i in items] and [u.name for u in users]  # columns only
    assert sorted(u.option for u in record.unused) == ["joinedload(Item.owner)", "subqueryload(User.items)"]
    with profile() as mixed:
        async with AsyncSession(shop.async_engine) as session:
            option = selectinload(User.items).joinedload(Item.owner)
            users = (await session.scalars(select(User).where(User.id <= 2).options(option))).all()
            assert all(item.title for user in users for item in user.items)
    [unused] = mixed.unused
    assert unused.option == "selectinload(User.items).joinedload(Item.owner)" and unused.relationship == "Item.owner"


async def test_a_nested_chain_read_to_its_leaf_is_used_and_an_unread_leaf_is_one_finding(shop: Any) -> None:
    chain = selectinload(User.items).selectinload(Item.tags)
    async with AsyncSession(shop.async_engine) as session:
        with profile() as leaf_read:
            users = (await session.scalars(select(User).where(User.id <= 3).options(chain))).all()
            assert len({tag.name for user in users for item in user.items for tag in item.tags}) == 5
        session.expunge_all()
        for _ in range(2):  # the first report has no line yet; the second one does
            with profile() as leaf_unread:
                users = (await session.scalars(select(User).where(User.id <= 3).options(chain))).all()  # CHAIN
                assert sum(len(user.items) for user in users) > 0
            session.expunge_all()
        with profile() as none_read:
            users = (await session.scalars(select(User).where(User.id <= 3).options(chain))).all()
            assert [user.name for user in users]
    assert leaf_read.unused == []
    [leaf] = leaf_unread.unused
    assert leaf.option == "selectinload(User.items).selectinload(Item.tags)" and leaf.relationship == "Item.tags"
    assert leaf.site is not None and leaf.site.lineno == line_of("CHAIN")
    assert leaf.fix == (
        "remove .selectinload(Item.tags) from selectinload(User.items).selectinload(Item.tags) "
        "(or replace it with noload(Item.tags))"
    )
    [whole] = none_read.unused  # one finding for the option, at its shallowest unread relationship
    assert whole.relationship == "User.items"


async def test_empty_collections_and_empty_results_are_not_reported(shop: Any) -> None:
    chain = selectinload(User.items).selectinload(Item.tags)
    async with AsyncSession(shop.async_engine) as session:
        with profile() as empty:
            [user] = (await session.scalars(select(User).where(User.id == 12).options(chain))).all()
            assert user.items == []  # read, and empty: Item.tags could not have been read
        with profile() as no_rows:
            assert (await session.scalars(select(User).where(User.id == -1).options(chain))).all() == []
    assert empty.unused == [] and no_rows.unused == []


async def test_reads_by_response_model_serialization_count(shop: Any) -> None:
    response, logs = await get(shop, "/api/v1/users/3/items")
    assert response.status_code == 200 and len(response.json()["items"]) > 0
    assert of(logs, "unused_eager_load") == [] and of(logs, "n_plus_one") == []


async def test_reads_by_a_background_task_of_the_request_count(shop: Any) -> None:
    response, logs = await get(shop, "/api/v1/items/background")
    assert response.json() == 20
    assert of(logs, "unused_eager_load") == []


async def test_never_add_and_remove_advice_for_one_relationship(shop: Any) -> None:
    async with AsyncSession(shop.async_engine) as session:
        with profile() as record:
            await session.scalars(select(Item).where(Item.id <= 3).options(selectinload(Item.tags)))
            for item in (await session.scalars(select(Item).where(Item.id.between(100, 107)))).all():
                await item.awaitable_attrs.tags
    assert [(f.relationship, f.count) for f in record.findings] == [("Item.tags", 8)]
    assert record.unused == []
