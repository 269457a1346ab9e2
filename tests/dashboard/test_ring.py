"""The Requests ring is bounded: whatever the traffic, it keeps the last ``size`` summaries and its memory stops
growing once it is full; a request's queries are cut at ``MAX_QUERIES_KEPT`` (its count stays exact). Records
come from the real profiler on a real engine."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from pgpulse.dashboard import RequestRing
from pgpulse.dashboard.requests import MAX_QUERIES_KEPT, QuerySummary, RequestSummary
from pgpulse.profiler import instrument, profile
from pgpulse.profiler.context import Record

QUERIES = 12
RUNAWAY = MAX_QUERIES_KEPT + 50  # a request in a loop: more queries than the ring keeps for one request
SIZE, FED = 500, 10_000


def _records(database_url: str) -> tuple[Record, Record]:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    instrument(engine)
    records = []
    try:
        with engine.connect() as conn:
            for count in (QUERIES, RUNAWAY):
                with profile(route="/items/{id}") as record:
                    for i in range(count):
                        conn.execute(sa.text("SELECT :i AS i"), {"i": i}).all()
                record.method = "GET"
                records.append(record)
        return records[0], records[1]
    finally:
        engine.dispose()


def _live(kind: type) -> int:
    gc.collect()
    return sum(isinstance(o, kind) for o in gc.get_objects())


def _used_bytes() -> int:
    gc.collect()  # what is still referenced, not what the collector has yet to free
    return tracemalloc.get_traced_memory()[0]


async def test_ten_thousand_requests_into_a_ring_of_500_keep_the_last_500_in_bounded_memory(
    make_database: Callable[..., Awaitable[str]],
) -> None:
    record, runaway = await asyncio.to_thread(_records, await make_database("ring"))
    assert (record.query_count, runaway.query_count) == (QUERIES, RUNAWAY)
    others = (_live(RequestSummary), _live(QuerySummary))  # other tests' rings (session fixtures) hold a few
    ring = RequestRing(size=SIZE)
    tracemalloc.start()
    try:
        empty = _used_bytes()
        for _ in range(SIZE):
            ring(record)
        full = _used_bytes() - empty
        for _ in range(FED - SIZE):
            ring.add(record)
        after = _used_bytes() - empty
    finally:
        tracemalloc.stop()
    items = ring.items()
    assert len(items) == SIZE
    assert [r.id for r in items] == list(range(FED - SIZE + 1, FED + 1))  # the newest 500, oldest first
    assert {(r.query_count, len(r.queries)) for r in items} == {(QUERIES, QUERIES)}
    assert ring.get(1) is None and ring.get(FED) is items[-1]
    # 19 times the traffic once full, and the ring holds no more than it did (5 % slack for the allocator)...
    assert full > 0
    assert after <= full * 1.05, (full, after)
    # ...because the summaries it let go of are gone: exactly 500 requests' worth are alive
    assert (_live(RequestSummary) - others[0], _live(QuerySummary) - others[1]) == (SIZE, SIZE * QUERIES)
    ring.add(runaway)
    kept = ring.items()[-1]
    assert (kept.query_count, len(kept.queries)) == (RUNAWAY, MAX_QUERIES_KEPT)
