"""instrument() / uninstrument() and the record's life: installing twice is a no-op, uninstrument removes every
listener, a closed record accepts nothing, failed statements are recorded with their error class."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from structlog.testing import capture_logs
from tests.profiler.apps.shop_models import Item, User

from pgpulse.db.urls import async_url
from pgpulse.profiler import instrument, profile, uninstrument
from pgpulse.profiler.events import config_of

EVENTS = ("before_cursor_execute", "after_cursor_execute", "engine_disposed")


async def walk_owners(engine: Any, items: int = 6) -> None:
    async with AsyncSession(engine) as session:
        for item in (await session.scalars(select(Item).where(Item.id <= items).order_by(Item.id))).all():
            await item.awaitable_attrs.owner


async def test_instrument_twice_is_a_no_op_and_never_double_counts(shop: Any) -> None:
    engine = create_async_engine(async_url(shop.url))
    try:
        first = instrument(engine, threshold=3)
        second = instrument(engine, threshold=3)
        assert first is second
        for name in EVENTS:
            assert len(getattr(engine.sync_engine.dispatch, name)) == 1, name
        with profile() as record:
            await walk_owners(engine)
        assert record.query_count == 1 + 6  # the items, then one owner per item (owners 2..7 are distinct)
        [finding] = record.findings
        assert finding.relationship == "Item.owner" and finding.count == 6
    finally:
        uninstrument(engine)
        await engine.dispose()


async def test_a_second_instrument_call_updates_the_one_config(shop: Any) -> None:
    engine = create_async_engine(async_url(shop.url))
    try:
        instrument(engine, threshold=9)
        instrument(engine, threshold=4)
        assert config_of(engine) is not None and config_of(engine).threshold == 4  # type: ignore[union-attr]
        with profile() as record:
            await walk_owners(engine, items=4)
        assert [f.count for f in record.findings] == [4]
    finally:
        uninstrument(engine)
        await engine.dispose()


def test_uninstrument_removes_every_listener_it_registered(shop: Any) -> None:
    engine = create_engine(async_url(shop.url).set(drivername="postgresql+psycopg"))
    before = {name: len(getattr(engine.dispatch, name)) for name in EVENTS}
    pool_before = (len(engine.pool.dispatch.checkout), len(engine.pool.dispatch.checkin))
    instrument(engine)
    engine.dispose()  # a new pool: the listeners are carried over to it, and the checkout timer re-wrapped
    assert "connect" in engine.pool.__dict__ and len(engine.pool.dispatch.checkout) == 1
    assert uninstrument(engine) is True
    assert {name: len(getattr(engine.dispatch, name)) for name in EVENTS} == before == dict.fromkeys(EVENTS, 0)
    assert (len(engine.pool.dispatch.checkout), len(engine.pool.dispatch.checkin)) == pool_before == (0, 0)
    assert "connect" not in engine.pool.__dict__
    assert uninstrument(engine) is False
    with profile() as record, capture_logs() as logs, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        with pytest.raises(DBAPIError):
            conn.execute(text("SELECT 1 / 0"))  # the handle_error listener is gone too
    assert record.query_count == 0 and logs == []
    engine.dispose()


async def test_a_task_that_outlives_its_record_adds_nothing_to_it(shop: Any) -> None:
    ran_after_close: list[int] = []
    first_query_done = asyncio.Event()

    async def straggler() -> None:
        async with AsyncSession(shop.async_engine) as session:
            await session.execute(select(User.name).where(User.id == 1))
            first_query_done.set()
            await closed.wait()
            for uid in range(1, 21):
                await session.execute(select(User.name).where(User.id == uid))
                ran_after_close.append(uid)
            items = (await session.scalars(select(Item).where(Item.id <= 6))).all()
            for item in items:
                await item.awaitable_attrs.owner

    closed = asyncio.Event()
    with profile() as record:
        task = asyncio.create_task(straggler())  # copies the context: the task still sees the record
        await first_query_done.wait()
    closed.set()
    await task
    assert len(ran_after_close) == 20  # the statements did run…
    assert record.query_count == 1 and record.findings == []  # …and the closed record took none of them
    assert record.counts == {record.queries[0].fingerprint: 1}


async def test_failed_statements_are_recorded_with_their_error_class(shop: Any) -> None:
    with profile() as record, capture_logs() as logs:
        async with AsyncSession(shop.async_engine) as session:
            await session.execute(text("SET LOCAL statement_timeout = 50"))
            with pytest.raises(DBAPIError):
                await session.execute(text("SELECT pg_sleep(5) WHERE 'top-secret' IS NOT NULL"))
    [failed] = record.failed
    assert failed.error == "QueryCanceledError"
    assert record.query_count == 2  # the SET, and the statement that timed out
    [event] = [e for e in logs if e["event"] == "query_failed"]
    assert event["error"] == "QueryCanceledError" and "top-secret" not in repr(event)
    assert event["statement"] == "SELECT pg_sleep($1) WHERE $2 IS NOT NULL"


def test_failed_statements_of_a_sync_engine_too(shop: Any) -> None:
    from sqlalchemy.orm import Session

    with profile() as record, Session(shop.sync_engine) as session, pytest.raises(DBAPIError):
        session.execute(text("SELECT 1 / 0"))
    assert [q.error for q in record.queries] == ["DivisionByZero"]
