"""An application that sends only distinct large statements cannot make the profiler's memos grow past their byte
budget (pgpulse.sql.cache): the real profiler on a real engine, then the shape functions called directly.

Measured with tracemalloc, in this process, after a warm-up: the memos hold Python str objects, which tracemalloc
counts exactly, whatever the machine's load; peak RSS would add the allocator's retention and the C parser's
arenas (noise of tens of MB on a busy 2-core machine) to a number that must separate ~33 MB from hundreds. The
warm-up fills what is bounded by others (the pool's connection, asyncpg's and SQLAlchemy's own statement caches,
left at their defaults except asyncpg's prepared statements, turned off so its 100 texts do not count).

Measured on this test: 0.1 MB kept after the profiled statements and 33 MB at the end; with the
functools.lru_cache memos before (8,192 entries each, any size) the same run kept 188 MB and 331 MB, and fails.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from pgpulse.db.urls import async_url
from pgpulse.profiler import instrument, profile, uninstrument
from pgpulse.profiler.statements import SHAPES, shape
from pgpulse.sql import fingerprint, normalize
from pgpulse.sql.shape import FINGERPRINTS, MAX_ITEM_BYTES, NORMALIZED

MB = 1024 * 1024
# What the memos these texts reach may hold: FINGERPRINTS (32 MiB), NORMALIZED (32 MiB) and SHAPES (8 MiB) share
# the key objects here (one str passed to all three), so about 32 MiB plus the per-entry overhead; 64 MB leaves
# room for the interpreter's own noise and is a tenth of what the unbounded-by-bytes caches kept.
GROWTH_LIMIT = 64 * MB
BLOCK = 20  # statements per profile() block: each block's record (and its 20 texts) is dropped when it ends


def large_statement(i: int, size: int) -> str:
    """A distinct statement of ``size`` characters: the shape an f-string ``text()`` with an inlined value has."""
    head = f"SELECT 1 AS n WHERE '{i:09d}"
    return head + "x" * (size - len(head) - 8) + "' <> ''"


async def run_profiled(conn: AsyncConnection, start: int, stop: int, size: int) -> None:
    for block in range(start, stop, BLOCK):
        with profile() as record:
            for i in range(block, min(block + BLOCK, stop)):
                result = await conn.exec_driver_sql(large_statement(i, size))
                assert result.scalar() == 1
        assert record.query_count == min(BLOCK, stop - block)
        assert record.findings  # the same shape 20 times: an N+1 finding, so shape() ran on the text too


def empty_memos() -> None:
    for memo in (FINGERPRINTS, NORMALIZED, SHAPES):
        memo.clear()


async def test_distinct_large_statements_do_not_grow_the_profilers_memory(make_database: Any) -> None:
    url = async_url(await make_database("cachebound")).update_query_dict({"prepared_statement_cache_size": "0"})
    engine = create_async_engine(url)
    instrument(engine)
    try:
        async with engine.connect() as conn:
            await run_profiled(conn, 0, 200, 64 * 1024)  # warm-up
            empty_memos()
            gc.collect()
            tracemalloc.start()
            try:
                # The real profiler: 3,000 distinct 64 KB statements through the listeners.
                await run_profiled(conn, 200, 3200, 64 * 1024)
                profiled = tracemalloc.get_traced_memory()[0]
                # Straight to the shape functions: texts just under the per-entry limit (stored until the bytes
                # budget evicts them), then 100 KB ones (over it: never stored).
                under = MAX_ITEM_BYTES - 1024
                for i in range(12_000):
                    text = large_statement(i, under)
                    assert fingerprint(text) and normalize(text) == "SELECT $1 AS n WHERE $2 <> $3"
                    assert shape(text) == "SELECT $1 AS n WHERE $2 <> $3"
                for i in range(2_500):
                    text = large_statement(i, 100 * 1024)
                    assert fingerprint(text) and normalize(text) and shape(text)
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
    finally:
        uninstrument(engine)
        await engine.dispose()
    print(f"memory kept: {profiled / MB:.1f} MB after the profiled statements, {grown / MB:.1f} MB at the end")
    assert profiled < 8 * MB, profiled  # 64 KB texts are over the per-entry limit: the profiler kept none
    assert grown < GROWTH_LIMIT, grown
    for memo in (FINGERPRINTS, NORMALIZED, SHAPES):
        assert memo.bytes <= memo.max_bytes and len(memo) <= memo.max_entries
    assert FINGERPRINTS.bytes > FINGERPRINTS.max_bytes * 0.9  # the byte budget, not the texts, stopped it
