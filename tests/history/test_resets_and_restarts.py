"""Deltas across a real pg_stat_statements_reset(), pg_stat_reset(), a clean restart and a crash.

A dedicated throw-away server: resetting pg_stat_statements and restarting would disturb the other tests'
server. Expected values are the calls this test makes; a reset interval counts from zero (see deltas.py).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import EmbeddedPostgres

from .conftest import run, statement_points, table_points, take, wait_stat

QUERY = "SELECT v FROM items WHERE id = $1"
SEQ_SCANS = "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'events'"
SCAN_ALL = "SELECT count(*) FROM events"


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    # Not ephemeral: an ephemeral cluster deletes its data on stop(), and this test stops it on purpose.
    # Not under pytest's tmp_path either: concurrent pytest runs prune each other's numbered directories.
    base = Path(tempfile.mkdtemp(prefix="pgpulse-history-"))
    server = EmbeddedPostgres(data_dir=base / "data", fast=True)
    try:
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


async def test_deltas_survive_resets_a_clean_restart_and_a_crash(
    server: EmbeddedPostgres, make_database: Callable[..., Awaitable[str]]
) -> None:
    target = await create_database(server.url(), "target")
    # The store lives elsewhere, as it would in production: this server runs with synchronous_commit = off, so
    # the crash below could take the store's last committed snapshot with it.
    store = await make_database("hrestartstore")
    await run(
        target,
        "CREATE EXTENSION pg_stat_statements",
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g",
        "CREATE TABLE events (id int, what text)",
        "INSERT INTO events SELECT g, 'e' FROM generate_series(1, 50) g",
    )
    name = "restarts"

    async def calls(n: int) -> None:
        await run(target, QUERY, repeat=n, args=(7,))

    async def scans(n: int, expected_total: int) -> None:
        await run(target, SCAN_ALL, repeat=n)
        await wait_stat(target, SEQ_SCANS, expected_total)

    first = await take(target, store, name)
    assert first.first
    await calls(5)
    await scans(4, 4)
    await take(target, store, name)
    await calls(3)
    await scans(2, 6)
    r3 = await take(target, store, name)
    assert r3.epoch == 1 and r3.epoch_reasons == ()

    # A full pg_stat_statements reset, then more calls than before: only the reset marker can tell.
    await run(target, "SELECT pg_stat_statements_reset()")
    await calls(10)
    # pg_stat_reset() zeroes the table counters; fewer scans after it than before.
    await run(target, "SELECT pg_stat_reset()")
    await wait_stat(target, SEQ_SCANS, 0)
    await scans(3, 3)
    r4 = await take(target, store, name)
    assert "pg_stat_statements was reset" in r4.epoch_reasons
    assert "the database statistics were reset" in r4.epoch_reasons

    # A clean restart keeps both kinds of statistics: deltas continue.
    await calls(2)
    await scans(1, 4)
    await asyncio.to_thread(server.restart)
    await calls(3)
    await scans(2, 6)
    r5 = await take(target, store, name)
    assert r5.epoch_reasons == ("the server restarted",)

    # An immediate shutdown (crash recovery follows): the cumulative statistics are discarded, so the table's
    # interval counts from zero (only what ran after the restart); pg_stat_statements keeps its entries (the
    # postmaster still saves them) and says so by an unchanged stats_reset, so its delta is every call.
    await calls(7)
    await scans(5, 11)
    await asyncio.to_thread(server.stop, "immediate")
    await asyncio.to_thread(server.start)
    await calls(2)
    await scans(1, 1)
    r6 = await take(target, store, name)
    assert "the server restarted and lost its statistics" in r6.epoch_reasons

    points = await statement_points(store, name, "SELECT v FROM items WHERE id = $1")
    assert [p["calls"] for p in points] == [5, 3, 10, 5, 9]
    assert [p["from_zero"] for p in points] == [True, False, True, False, False]
    assert [p["cum_calls"] for p in points] == [5, 8, 18, 23, 32]
    tables = await table_points(store, name, "events")
    assert [p["seq_scan"] for p in tables] == [4, 2, 3, 3, 1]
    assert [p["from_zero"] for p in tables] == [False, False, True, False, True]

    conn = await asyncpg.connect(store)
    try:
        negative = await conn.fetchval(
            "SELECT count(*) FROM pgpulse_history.statement_point WHERE calls < 0 OR total_exec_time < 0 OR rows < 0"
        )
        assert negative == 0
        epochs = await conn.fetch("SELECT epoch FROM pgpulse_history.snapshot ORDER BY taken_at")
        assert [e["epoch"] for e in epochs] == [1, 1, 1, 2, 3, 4]
    finally:
        await conn.close()
