"""Replication slots on the real test server (wal_level = replica): a physical slot that reserves WAL and is
never consumed, and one that has not reserved any yet. Slots are server-wide, so each test drops its own."""

from __future__ import annotations

from typing import Any

import asyncpg

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
