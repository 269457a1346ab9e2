"""Fixtures for history tests: a migrated store on the shared test server, and helpers that talk to it.

Everything here reads or writes real PostgreSQL databases; statistics that PostgreSQL flushes lazily (table and
index counters) are waited for by polling the target, never by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest_asyncio

from pgpulse.history.snapshot import read_snapshot
from pgpulse.history.store import Recorded, migrate, open_store


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def store_url(make_database: Callable[..., Awaitable[str]]) -> str:
    url = await make_database("hstore")
    await asyncio.to_thread(migrate, url)
    return url


async def take(target_url: str, store_url: str, name: str) -> Recorded:
    """One snapshot of ``target_url`` recorded under ``name``."""
    snap = await read_snapshot(target_url)
    store = await open_store(store_url)
    try:
        return await store.record(name, snap)
    finally:
        await store.close()


async def run(url: str, *statements: str, repeat: int = 1, args: tuple[Any, ...] = ()) -> None:
    """Run statements (each ``repeat`` times) on one connection, then flush its statistics."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            for _ in range(repeat):
                await conn.execute(statement, *args) if args else await conn.execute(statement)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


async def wait_stat(url: str, sql: str, expected: float, timeout: float = 15.0) -> None:
    """Poll ``sql`` (one value) on ``url`` until it equals ``expected``: table statistics are flushed lazily."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(url)
    try:
        while True:
            value = await conn.fetchval(sql)
            if value == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{sql!r} is {value!r}, expected {expected!r} after {timeout} s")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def statement_points(store_url: str, target: str, query_like: str) -> list[asyncpg.Record]:
    """The points of the statements of ``target`` whose text matches ``query_like``, oldest first."""
    conn = await asyncpg.connect(store_url)
    try:
        return list(
            await conn.fetch(
                """SELECT p.*, s.query FROM pgpulse_history.statement_point p
                   JOIN pgpulse_history.statement_series s USING (series_id)
                   JOIN pgpulse_history.target t USING (target_id)
                   WHERE t.name = $1 AND s.query LIKE $2 ORDER BY p.bucket_end""",
                target,
                query_like,
            )
        )
    finally:
        await conn.close()


async def table_points(store_url: str, target: str, table: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(store_url)
    try:
        return list(
            await conn.fetch(
                """SELECT p.* FROM pgpulse_history.table_point p
                   JOIN pgpulse_history.relation_series s USING (series_id)
                   JOIN pgpulse_history.target t USING (target_id)
                   WHERE t.name = $1 AND s.kind = 'table' AND s.relname = $2 ORDER BY p.bucket_end""",
                target,
                table,
            )
        )
    finally:
        await conn.close()
