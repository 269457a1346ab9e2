"""CitizenApp behind PgBouncer in transaction mode: with ``pgbouncer=True`` every route works under concurrency;
without it, asyncpg's named prepared statements meet the wrong server connection and requests fail."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker

from pgpulse.db.engine import make_engine
from pgpulse.demo.loading import load_selectin

REQUESTS, CONCURRENCY = 200, 20


def _requests(seeded: Any) -> list[tuple[str, str, dict[str, Any] | None, int]]:
    hot, show = seeded.hot_user_ids[0], seeded.showcase_user_id
    return [
        ("GET", f"/users/{show}", None, 200),
        ("GET", f"/users/{hot}/posts/published", None, 200),
        ("GET", f"/users/{show}/posts?strategy=lazy", None, 200),
        ("GET", f"/users/{show}/posts?strategy=selectin", None, 200),
        ("GET", f"/users/{show}/posts?strategy=single", None, 200),
        ("GET", "/users/999999999", None, 404),
        ("POST", "/users", {"name": "Bouncer"}, 201),  # email filled in per request
        ("POST", "/posts", {"user_id": show, "title": "through pgbouncer", "status": "published"}, 201),
        ("GET", "/health/db", None, 200),
    ]


async def _mixed_load(client: httpx.AsyncClient, seeded: Any, tag: str) -> tuple[Counter[str], list[str]]:
    plan = list(itertools.islice(itertools.cycle(_requests(seeded)), REQUESTS))
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []

    async def one(i: int, method: str, path: str, body: dict[str, Any] | None, expected: int) -> None:
        if body is not None and path == "/users":
            body = {**body, "email": f"bouncer-{tag}-{i}@example.org"}
        async with gate:
            response = await client.request(method, path, json=body)
        outcomes[f"{method} {path.split('?')[0]} {response.status_code}"] += 1
        if response.status_code != expected:
            failures.append(f"{method} {path} -> {response.status_code} {response.text[:120]}")

    await asyncio.gather(*(one(i, *request) for i, request in enumerate(plan)))
    return outcomes, failures


async def test_all_routes_work_through_pgbouncer_transaction_mode(
    pgbouncer: Any, citizen_db: Any, citizen_app: Any, settings_for: Any, wait_pool_idle: Any
) -> None:
    # The route timeout's SET LOCAL goes through PgBouncer too (a session-level SET would leak to other clients).
    settings = settings_for(
        pgbouncer=True, pool_size=10, max_overflow=5, pool_timeout=10.0, route_statement_timeout_ms=10_000
    )
    async with citizen_app(pgbouncer.url, settings) as running:
        outcomes, failures = await _mixed_load(running.client, citizen_db.seeded, "ok")
        assert failures == [], (failures[:3], pgbouncer.log_path.read_text()[-1500:])
        assert sum(outcomes.values()) == REQUESTS
        assert (await wait_pool_idle(running.app))["checked_out"] == 0
    print(f"\nthrough pgbouncer: {dict(outcomes)}")


async def test_without_pgbouncer_mode_prepared_statements_break(
    pgbouncer: Any, citizen_db: Any, settings_for: Any
) -> None:
    """Proves the test above bites: the same engine with the statement caches on fails behind PgBouncer.

    (statement_timeout_ms=0 so the failure is the prepared statements, not the start-up parameter that
    PgBouncer also rejects.)"""
    # pool_timeout as the app test's: 20 sessions on 10 + 2 connections must wait for one, not time out, on a
    # loaded machine (a TimeoutError is not the failure this test is about)
    engine = make_engine(
        pgbouncer.url, settings_for(pgbouncer=False, statement_timeout_ms=0, pool_size=10, pool_timeout=10.0)
    )
    sessions = async_sessionmaker(engine)
    show = citizen_db.seeded.showcase_user_id
    errors: list[str] = []

    async def one() -> None:
        try:
            async with sessions() as session:
                await load_selectin(session, show)
        except DBAPIError as exc:
            errors.append(str(exc.orig))

    try:
        for _ in range(5):
            await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    finally:
        await engine.dispose()
    assert any("prepared statement" in e for e in errors), errors[:3] or "no error without pgbouncer mode"
    print(f"\nwithout pgbouncer mode: {len(errors)}/{5 * CONCURRENCY} sessions failed, e.g. {errors[0]}")


async def test_pgbouncer_mode_sends_no_startup_parameter_pgbouncer_rejects(pgbouncer: Any, settings_for: Any) -> None:
    """PgBouncer closes clients that send statement_timeout at start-up; pgbouncer mode must not send it."""
    for pgbouncer_mode in (True, False):
        engine = make_engine(pgbouncer.url, settings_for(pgbouncer=pgbouncer_mode, statement_timeout_ms=30_000))
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            refused = None
        except DBAPIError as exc:
            refused = str(exc.orig)
        finally:
            await engine.dispose()
        if pgbouncer_mode:
            assert refused is None, refused
        else:
            assert refused is not None and "unsupported startup parameter: statement_timeout" in refused
