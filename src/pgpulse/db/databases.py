"""Creating the throw-away databases that the demo, benchmarks and tests work in, one way everywhere."""

from __future__ import annotations

import asyncpg

from pgpulse.db.urls import async_url
from pgpulse.sql.quote import quote_ident


def with_database(url: str, database: str) -> str:
    """The same server DSN (libpq form, password kept) pointing at another database."""
    return async_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


async def create_database(maintenance_url: str, name: str, *, replace: bool = False, if_missing: bool = False) -> str:
    """CREATE DATABASE ``name`` from a maintenance connection; returns the new database's DSN.

    ``replace`` drops an existing one first (forcing its sessions out); ``if_missing`` keeps an existing one.
    """
    quoted = quote_ident(name)
    conn = await asyncpg.connect(maintenance_url)
    try:
        if replace:
            await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        elif if_missing and await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            return with_database(maintenance_url, name)
        await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()
    return with_database(maintenance_url, name)
