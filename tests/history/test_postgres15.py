"""PostgreSQL 15 as target and store: pg_stat_statements 1.10 names its columns differently from 18's (block I/O
time not split into shared/local, no stats_since), and the store's migrations must run there too."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import EmbeddedPostgres, ephemeral_server
from pgpulse.history.kinds import Kind
from pgpulse.history.snapshot import read_snapshot
from pgpulse.history.store import migrate

from .conftest import run, statement_points, take

DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def pg15() -> Iterator[EmbeddedPostgres]:
    if not (DEBIAN_PG15 / "postgres").exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's postgresql-15 is missing: scripts/test.sh installs it (run it as root)")
        pytest.skip("needs Debian's postgresql-15 (bash scripts/test.sh installs it)")
    with ephemeral_server(bins=DEBIAN_PG15, settings={"track_io_timing": "on"}) as server:
        yield server


async def test_snapshots_and_deltas_on_postgres_15(pg15: EmbeddedPostgres) -> None:
    target = await create_database(pg15.url(), "target15")
    store = await create_database(pg15.url(), "store15")
    await asyncio.to_thread(migrate, store)
    await run(target, "CREATE EXTENSION pg_stat_statements", "CREATE TABLE t (id int PRIMARY KEY, v text)")
    await take(target, store, "pg15")
    await run(target, "INSERT INTO t VALUES ($1, 'x')", repeat=1, args=(1,))
    await run(target, "SELECT v FROM t WHERE id = $1", repeat=12, args=(1,))
    recorded = await take(target, store, "pg15")

    snap = await read_snapshot(target)
    assert snap.server_version_num // 10000 == 15
    assert snap.pgss_available and snap.pgss_stats_reset is not None
    [row] = [r for r in snap.rows[Kind.statement] if r.labels[0] == "SELECT v FROM t WHERE id = $1"]
    assert row.since is None  # no per-entry stats_since before 17
    assert recorded.epoch_reasons == ()
    points = await statement_points(store, "pg15", "SELECT v FROM t WHERE id = $1")
    assert [(p["calls"], p["rows"], p["from_zero"]) for p in points] == [(12, 12, True)]
    [insert] = await statement_points(store, "pg15", "INSERT INTO t VALUES ($1, %")
    assert insert["calls"] == 1 and insert["wal_records"] >= 1 and insert["wal_bytes"] > 0
