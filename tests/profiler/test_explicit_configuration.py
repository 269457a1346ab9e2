"""Components take their configuration as arguments: a ``.env`` in the current directory changes nothing.

Only the command line and the demo read the settings object (pydantic-settings: the environment and the
current directory's ``.env``). An app that embeds the profiler, or builds its engine with ``make_engine``, is
started from whatever directory its process manager chose; a stray ``.env`` there must not raise the N+1
threshold to 999, set a 1 ms statement timeout or point it at another database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import QueuePool
from tests.profiler.apps.shop_models import Item

from pgpulse.db.engine import make_engine
from pgpulse.db.urls import async_url
from pgpulse.profiler import instrument, profile, uninstrument
from pgpulse.settings import Settings

BOGUS = "postgresql://bogus:bogus@127.0.0.1:1/bogus"
DOTENV = f"""\
PGPULSE_DATABASE_URL={BOGUS}
PGPULSE_NPLUSONE_THRESHOLD=999
PGPULSE_SLOW_QUERY_MS=0
PGPULSE_LOG_PARAMETERS=true
PGPULSE_STATEMENT_TIMEOUT_MS=1
PGPULSE_POOL=null
"""


@pytest.fixture
def bogus_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``.env`` with hostile values in the current directory, and no PGPULSE_* variables in the environment."""
    for name in list(os.environ):
        if name.startswith("PGPULSE_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(DOTENV)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_settings_object_of_the_cli_and_the_demo_reads_the_dotenv(bogus_dotenv: Path) -> None:
    """The file is well formed and would take effect wherever it is read: what the other tests rule out."""
    settings = Settings()
    assert (settings.database_url, settings.nplusone_threshold, settings.statement_timeout_ms, settings.pool) == (
        BOGUS,
        999,
        1,
        "null",
    )


async def test_the_profiler_detects_with_the_threshold_it_was_given(bogus_dotenv: Path, shop: Any) -> None:
    engine = create_async_engine(async_url(shop.url))
    try:
        config = instrument(engine)  # no arguments: the documented defaults, not the .env's
        assert (config.threshold, config.slow_query_ms, config.log_parameters) == (5, 200.0, False)
        with profile() as record:
            async with AsyncSession(engine) as session:
                for item in (await session.scalars(select(Item).where(Item.id <= 6).order_by(Item.id))).all():
                    await item.awaitable_attrs.owner
        assert [(f.relationship, f.count) for f in record.findings] == [("Item.owner", 6)]
    finally:
        uninstrument(engine)
        await engine.dispose()


async def test_make_engine_without_settings_uses_the_documented_defaults(bogus_dotenv: Path, shop: Any) -> None:
    engine = make_engine(shop.url)  # the .env's URL, null pool and 1 ms timeout would all show here
    try:
        assert isinstance(engine.pool, QueuePool) and engine.pool.size() == 10
        async with engine.connect() as conn:
            database = (await conn.exec_driver_sql("SELECT current_database()")).scalar_one()
            timeout = (await conn.exec_driver_sql("SHOW statement_timeout")).scalar_one()
        assert (database, timeout) == (shop.url.rsplit("/", 1)[1].split("?")[0], "30s")
    finally:
        await engine.dispose()
