"""Alembic environment of the history store: runs over asyncpg, keeps its version table inside our own schema.

The version table lives in ``pgpulse_history`` (not ``public.alembic_version``) because the store may share a
database with an application — even the audited one, when the user asks — whose own Alembic history must not
be touched.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from pgpulse.db.urls import async_url
from pgpulse.history.kinds import SCHEMA, TAG
from pgpulse.sql import quote_ident

config = context.config


def _url() -> str:
    url = config.attributes.get("database_url")
    if not url:
        raise RuntimeError("no store URL for migrations: use pgpulse.history.store.migrate(url)")
    return str(url)


def _run(connection: Connection) -> None:
    connection.execute(text(f"{TAG} CREATE SCHEMA IF NOT EXISTS {quote_ident(SCHEMA)}"))
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table_schema=SCHEMA,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        async_url(_url()), poolclass=NullPool, connect_args={"server_settings": {"application_name": "pgpulse-history"}}
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the history store migrates online only: pgpulse history migrate --store URL")
asyncio.run(run_migrations_online())
