"""The schema comes from Alembic and carries the tuning: composite index, FK index, autovacuum settings."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from pgpulse.db.urls import async_url
from pgpulse.demo.migrate import downgrade, upgrade, upgrade_async
from pgpulse.demo.models import Base


async def test_upgrade_creates_tuned_schema_and_round_trips(make_database) -> None:  # type: ignore[no-untyped-def]
    url = await make_database("mig")
    await upgrade_async(url)
    await upgrade_async(url)  # idempotent at head
    conn = await asyncpg.connect(url)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert {"users", "posts", "comments", "alembic_version"} <= tables
        indexdef = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_posts_user_status_created'"
        )
        assert indexdef is not None and "(user_id, status, created_at DESC)" in indexdef
        assert await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_comments_post_id'")
        for table in ("posts", "comments"):
            options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = $1", table)
            assert set(options) == {
                "autovacuum_vacuum_scale_factor=0.05",
                "autovacuum_analyze_scale_factor=0.02",
            }
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0002"
    finally:
        await conn.close()
    await asyncio.to_thread(downgrade, url)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.posts')") is None
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, url)


async def test_models_match_migrations(make_database) -> None:  # type: ignore[no-untyped-def]
    """Autogenerate finds nothing to do: models and migrations describe the same schema."""
    url = await make_database("autogen")
    await upgrade_async(url)
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            changes = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()
    assert changes == []
