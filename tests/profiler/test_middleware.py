"""The middleware on CitizenApp: per-request records that never mix, Server-Timing, logs without parameter
values, metrics under their documented names, sqlcommenter tags visible in pg_stat_statements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from pgpulse.demo.app import create_app
from pgpulse.profiler import METRIC_NAMES, instrument
from pgpulse.profiler.metrics import render
from pgpulse.settings import Settings


@asynccontextmanager
async def serve(url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(url, Settings(**settings))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    async with app.router.lifespan_context(app), client:
        yield client


def server_timing_count(response: httpx.Response) -> int:
    header = response.headers["server-timing"]
    assert header.startswith("db;dur=")
    return int(header.split('desc="')[1].split(" ")[0])


async def test_citizenapp_lazy_is_reported_naming_both_relationships(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    async with serve(db.url, server_timing=True) as client:
        with capture_logs() as logs:
            lazy = await client.get(f"/users/{uid}/posts", params={"strategy": "lazy"})
        with capture_logs() as quiet:
            for strategy in ("selectin", "single"):
                response = await client.get(f"/users/{uid}/posts", params={"strategy": strategy})
                assert response.status_code == 200
    assert server_timing_count(lazy) == 52
    [event] = [e for e in logs if e["event"] == "n_plus_one"]
    assert event["route"] == "/users/{user_id}/posts"
    assert event["relationship"] == "Post.comments" and event["loaded_via"] == "User.posts"
    assert "selectinload(User.posts).selectinload(Post.comments)" in event["fix"]
    assert event["source"].endswith("in load_lazy()") and "demo/loading.py" in event["source"]
    assert event["count"] == 50 and event["log_level"] == "warning"
    assert [e for e in quiet if e["event"] == "n_plus_one"] == []


async def test_server_timing_is_off_unless_configured(db: Any) -> None:
    async with serve(db.url) as client:
        response = await client.get("/users/1")
    assert response.status_code == 200 and "server-timing" not in response.headers


async def test_concurrent_requests_never_mix_records(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    async with serve(db.url, server_timing=True, pool_size=20) as client:
        with capture_logs() as logs:
            jobs = []
            for i in range(16):
                strategy = ("lazy", "selectin", "single")[i % 3]
                jobs.append(client.get(f"/users/{uid}/posts", params={"strategy": strategy}))
            responses = await asyncio.gather(*jobs)
    expected = {"lazy": 52, "selectin": 3, "single": 1}
    for i, response in enumerate(responses):
        assert response.status_code == 200
        assert server_timing_count(response) == expected[("lazy", "selectin", "single")[i % 3]]
    findings = [e for e in logs if e["event"] == "n_plus_one"]
    assert len(findings) == 6 and all(e["count"] == 50 for e in findings)


async def test_slow_query_log_has_no_parameter_values_unless_asked(db: Any) -> None:
    secret = "secret-value@example.org"
    async with serve(db.url, slow_query_ms=0) as client:
        with capture_logs() as logs:
            response = await client.post("/users", json={"name": "Private Person", "email": secret})
            assert response.status_code == 201
    slow = [e for e in logs if e["event"] == "slow_query"]
    assert slow, "slow_query_ms=0 logs every statement"
    assert all({"route", "fingerprint", "duration_ms", "statement"} <= e.keys() for e in slow)
    assert any(e["route"] == "/users" for e in slow)
    assert secret not in repr(logs) and "Private Person" not in repr(logs)
    async with serve(db.url, slow_query_ms=0, log_parameters=True) as client:
        with capture_logs() as logs:
            await client.post("/users", json={"name": "Shown", "email": "shown@example.org"})
    assert "shown@example.org" in repr([e.get("parameters") for e in logs])


async def test_metrics_have_their_documented_names_and_pool_returns_to_idle(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    async with serve(db.url, metrics_route=True) as client:
        for strategy in ("lazy", "selectin"):
            await client.get(f"/users/{uid}/posts", params={"strategy": strategy})
        exposition = (await client.get("/metrics")).text
    for name in METRIC_NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in exposition, name
    assert 'pgpulse_db_queries_per_request_count{method="GET",route="/users/{user_id}/posts"}' in exposition
    assert (
        'pgpulse_nplusone_findings_total{method="GET",relationship="Post.comments",route="/users/{user_id}/posts"}'
        in (exposition)
    )
    assert 'pgpulse_db_pool_checked_out{pool="default"} 0.0' in render().decode()
    assert "pgpulse_db_pool_checkout_wait_seconds_count" in exposition


async def test_metrics_route_is_opt_in(db: Any) -> None:
    async with serve(db.url) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_sqlcommenter_tags_statements_with_the_route(db: Any) -> None:
    conn = await asyncpg.connect(db.url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        async with serve(db.url, sqlcommenter=True) as client:
            assert (await client.get("/users/3/posts/published")).status_code == 200
        texts = await conn.fetch("SELECT query FROM pg_stat_statements WHERE query LIKE '%route=%'")
    finally:
        await conn.close()
    assert any("/*route='%2Fusers%2F%7Buser_id%7D%2Fposts%2Fpublished'*/" in r["query"] for r in texts)


def test_route_durations_export_what_a_prometheus_histogram_would() -> None:
    """The lock-once-per-request collector must scrape exactly like prometheus-client's own Histogram."""
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.exposition import generate_latest

    from pgpulse.profiler.metrics import RouteDurations

    buckets = (0.0005, 0.001, 0.01, 0.1, 1.0)
    values = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.1, 0.5, 2.0, 30.0]  # on, between and beyond the bounds
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("q_seconds", "doc", ["route", "method"], buckets=buckets, registry=theirs)
    collector = RouteDurations("q_seconds", "doc", buckets)
    ours.register(collector)
    for route in ("/a", "/b/{id}"):
        for v in values:
            reference.labels(route, "GET").observe(v)
        collector.observe_many(route, values[:4], "GET")
        for v in values[4:]:
            collector.observe(route, v, "GET")

    def lines(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]

    assert lines(ours) == lines(theirs)
    assert 'q_seconds_bucket{le="0.001",method="GET",route="/a"} 3.0' in lines(ours)


async def test_failed_checkouts_do_not_move_the_pool_gauge() -> None:
    """SQLAlchemy fires "checkin" for a checkout that failed after pre-ping found the server gone and the
    reconnect was refused (a database restart): the gauge must not drift below zero."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from pgpulse.demo.embedded import ephemeral_server
    from pgpulse.profiler.metrics import POOL_CHECKED_OUT

    gauge = POOL_CHECKED_OUT.labels("restarted")
    with ephemeral_server() as server:
        engine = create_async_engine(server.url(driver="postgresql+asyncpg"), pool_pre_ping=True)
        instrument(engine, pool_name="restarted")
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert gauge._value.get() == 0.0
        server.stop()
        for _ in range(3):
            with pytest.raises(Exception):  # noqa: B017 - refused or reset: whichever the driver sees first
                async with engine.connect():
                    pass
        await engine.dispose()
    assert gauge._value.get() == 0.0
