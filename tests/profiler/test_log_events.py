"""The profiler's structlog events: each JSON line an app gets from the documented recipe has exactly the fields
``pgpulse.profiler.log_schema`` (and the README's table, made from it) promises; and pgpulse never touches an
app's own structlog configuration."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import structlog

from pgpulse.demo.app import create_app
from pgpulse.profiler.json_logging import json_logging
from pgpulse.profiler.log_schema import COMMON, EVENTS, markdown_table
from pgpulse.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"

# An app with no logging setup of its own: the README's one call, then CitizenApp with every event provoked
# once — a lazy N+1, an eager load nothing reads, a failing statement, a route on a NullPool engine (twice: logged
# once), a request past the record's cap (MAX_QUERIES_KEPT statements, on an engine of its own that is not slow),
# every other statement slow (threshold 0 ms, parameters logged), and an on_record hook that raises.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    from pgpulse.profiler.json_logging import json_logging

    assert json_logging()

    import httpx
    from fastapi import Request
    from sqlalchemy import select, text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.orm import selectinload
    from sqlalchemy.pool import NullPool

    from pgpulse.db.urls import async_url
    from pgpulse.demo.app import create_app
    from pgpulse.demo.models import User
    from pgpulse.profiler import instrument
    from pgpulse.profiler.context import MAX_QUERIES_KEPT
    from pgpulse.settings import Settings

    URL, UID = sys.argv[1], int(sys.argv[2])
    UNPOOLED = create_async_engine(async_url(URL), poolclass=NullPool)
    instrument(UNPOOLED, pool_name="unpooled", slow_query_ms=0, log_parameters=True)
    BULK = create_async_engine(async_url(URL))
    instrument(BULK, pool_name="bulk")


    def broken_hook(record):
        raise RuntimeError("exporter is down")


    async def unused(request: Request):
        async with request.app.state.read_sessionmaker() as session:
            stmt = select(User).where(User.id == UID).options(selectinload(User.posts))
            (await session.scalars(stmt)).one()
        return {}


    async def failing(request: Request):
        async with request.app.state.read_sessionmaker() as session:
            try:
                await session.execute(text("SELECT 1 / (SELECT count(*) - count(*) FROM users)"))
            except Exception:
                pass
        return {}


    async def unpooled():
        async with UNPOOLED.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {}


    async def truncated():
        async with BULK.connect() as conn:
            for _ in range(MAX_QUERIES_KEPT + 1):
                await conn.execute(text("SELECT 1"))
        return {}


    async def main():
        app = create_app(URL, Settings(slow_query_ms=0, log_parameters=True), on_record=broken_hook)
        app.add_api_route("/unused", unused)
        app.add_api_route("/failing", failing)
        app.add_api_route("/unpooled", unpooled)
        app.add_api_route("/truncated", truncated)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
        async with app.router.lifespan_context(app), client:
            paths = (f"/users/{UID}/posts?strategy=lazy", "/unused", "/failing", "/unpooled", "/unpooled", "/truncated")
            for path in paths:
                response = await client.get(path)
                assert response.status_code == 200, response.text


    asyncio.run(main())
    """
)


def _check(line: dict[str, Any]) -> None:
    fields = EVENTS[line["event"]]
    required = {f.name for f in (*COMMON, *fields) if not f.optional}
    allowed = required | {f.name for f in fields}
    assert required <= line.keys() <= allowed, (line["event"], sorted(line.keys() ^ required))
    for field in (*COMMON, *fields):
        if field.name in line:
            value = line[field.name]
            assert type(value) in field.types, (line["event"], field.name, value)


def test_every_json_line_matches_the_documented_schema(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, db.url, str(uid)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # every line of stdout is one JSON object
    for line in lines:
        _check(line)
    assert {line["event"] for line in lines} == set(EVENTS)  # each documented event was emitted and checked
    [nplusone] = [line for line in lines if line["event"] == "n_plus_one" and line["route"] != "/truncated"]
    assert nplusone["relationship"] == "Post.comments" and nplusone["count"] == 50 and nplusone["level"] == "warning"
    assert nplusone["route"] == "/users/{user_id}/posts" and nplusone["method"] == "GET"
    [unused] = [line for line in lines if line["event"] == "unused_eager_load"]
    assert unused["option"] == "selectinload(User.posts)" and unused["route"] == "/unused"
    [failed] = [line for line in lines if line["event"] == "query_failed"]
    assert failed["error"] == "DivisionByZeroError" and failed["route"] == "/failing"
    [unpooled] = [line for line in lines if line["event"] == "new_connection_per_request"]  # two requests, one line
    assert unpooled["route"] == "/unpooled" and unpooled["pool_class"] == "NullPool" and unpooled["count"] == 1
    hooks = [line for line in lines if line["event"] == "on_record_hook_failed"]
    assert len(hooks) == 6 and {h["error"] for h in hooks} == {"RuntimeError"} and hooks[0]["level"] == "error"
    [truncated] = [line for line in lines if line["event"] == "record_truncated"]
    assert truncated["route"] == "/truncated" and truncated["kept"] == 10_000 and truncated["total"] == 10_001
    slow = [line for line in lines if line["event"] == "slow_query"]
    assert len(slow) >= 52 + 1 + 1 + 2  # every statement of the first five requests crossed the 0 ms threshold
    assert all("parameters" in line for line in slow)  # the optional field, present with log_parameters=True


def test_the_readme_table_is_the_schema() -> None:
    assert markdown_table() in README.read_text()


async def test_an_apps_own_structlog_configuration_is_kept(db: Any) -> None:
    before, configured = structlog.get_config(), structlog.is_configured()
    seen: list[dict[str, Any]] = []

    def keep(logger: Any, method: str, event: dict[str, Any]) -> str:
        seen.append(dict(event))
        return "kept"

    mine = [keep]
    structlog.configure(
        processors=mine, logger_factory=structlog.ReturnLoggerFactory(), cache_logger_on_first_use=False
    )
    try:
        assert json_logging() is False  # the helper refuses to override it
        app = create_app(db.url, Settings())  # instrument() + the middleware
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
        async with app.router.lifespan_context(app), client:
            response = await client.get(f"/users/{db.seeded.showcase_user_id}/posts", params={"strategy": "lazy"})
        assert response.status_code == 200
        config = structlog.get_config()
        assert config["processors"] is mine and config["processors"] == [keep]
        assert isinstance(config["logger_factory"], structlog.ReturnLoggerFactory)
        assert [e["event"] for e in seen] == ["n_plus_one"]  # pgpulse's event went through the app's processors
    finally:
        structlog.reset_defaults()
        if configured:
            structlog.configure(**before)
