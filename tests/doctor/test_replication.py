"""Replication slots on the real test server (wal_level = replica): a physical slot that reserves WAL and is
never consumed, and one that has not reserved any yet. Slots are server-wide, so each test drops its own."""

from __future__ import annotations

from typing import Any

import asyncpg

from pgpulse.demo.embedded import ephemeral_server
from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.replication import ReplicationCheck


async def test_inactive_slots_and_the_wal_they_retain(db: str, run_check: Any) -> None:
    conn = await asyncpg.connect(db)
    try:
        await conn.execute("SELECT pg_create_physical_replication_slot('doctor_retains', true)")
        await conn.execute("SELECT pg_create_physical_replication_slot('doctor_unreserved', false)")
        await conn.execute("CREATE TABLE wal_maker AS SELECT g FROM generate_series(1, 20000) g")  # WAL after it
        findings = {f.object: f for f in await run_check(db, ReplicationCheck())}
        assert set(findings) == {"slot doctor_retains", "slot doctor_unreserved"}
        retains = findings["slot doctor_retains"]
        assert retains.severity is Severity.warning and retains.evidence["retained_bytes"] > 20000 * 4
        assert retains.fix is not None
        assert retains.fix.startswith("SELECT pg_drop_replication_slot('doctor_retains');")
        unreserved = findings["slot doctor_unreserved"]
        assert unreserved.severity is Severity.info and unreserved.evidence["retained_bytes"] is None
    finally:
        for slot in ("doctor_retains", "doctor_unreserved"):
            await conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot
            )
        await conn.close()


async def test_no_slots_no_replicas_is_healthy(db: str, run_check: Any) -> None:
    assert await run_check(db, ReplicationCheck()) == []


MAX_WAL = 32 * 1024 * 1024  # the smallest max_wal_size PostgreSQL accepts with 16 MB segments
CHUNK = 2 * 1024 * 1024
RETAINED = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots WHERE slot_name = $1"


async def _retain_at_least(conn: asyncpg.Connection, slot: str, target: int) -> int:
    """Write WAL in 2 MB records (flushed, so pg_current_wal_lsn moves) until the slot retains ``target``."""
    while (retained := int(await conn.fetchval(RETAINED, slot))) < target:
        await conn.execute("SELECT pg_logical_emit_message(false, 'doctor', repeat('x', $1), true)", CHUNK)
    return retained


async def test_logical_slot_and_the_max_wal_size_edge(run_check: Any) -> None:
    """A server of its own (wal_level = logical, max_wal_size = 32MB): an inactive logical slot is named with
    its database; a physical slot is a warning just under max_wal_size and critical once it retains that much."""
    settings = {"wal_level": "logical", "max_wal_size": "'32MB'", "min_wal_size": "'32MB'"}
    with ephemeral_server(settings=settings) as server:
        url = server.url()
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT pg_size_bytes(current_setting('max_wal_size'))") == MAX_WAL
            await conn.execute("SELECT pg_create_logical_replication_slot('doctor_logical', 'pgoutput')")
            await _retain_at_least(conn, "doctor_logical", 1)
            [logical] = await run_check(url, ReplicationCheck())
            assert logical.object == "slot doctor_logical" and logical.severity is Severity.warning
            assert logical.title.startswith("inactive logical slot doctor_logical (database postgres) retains ")
            assert logical.evidence["slot_type"] == "logical"
            await conn.execute("SELECT pg_drop_replication_slot('doctor_logical')")

            await conn.execute("CHECKPOINT")  # a physical slot reserves from the last checkpoint's redo pointer
            await conn.execute("SELECT pg_create_physical_replication_slot('doctor_edge', true)")
            below = await _retain_at_least(conn, "doctor_edge", MAX_WAL - 2 * CHUNK)
            assert below < MAX_WAL
            [warning] = await run_check(url, ReplicationCheck())
            assert warning.object == "slot doctor_edge" and warning.severity is Severity.warning
            assert below <= warning.evidence["retained_bytes"] < MAX_WAL
            assert warning.evidence["max_wal_size_bytes"] == MAX_WAL

            await _retain_at_least(conn, "doctor_edge", MAX_WAL)
            [critical] = await run_check(url, ReplicationCheck())
            assert critical.object == "slot doctor_edge" and critical.severity is Severity.critical
            assert critical.evidence["retained_bytes"] >= MAX_WAL
        finally:
            await conn.close()
