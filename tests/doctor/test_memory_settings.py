"""Memory settings against pgtune's recommendation for a RAM the test states (``--memory``): the test server
runs with shared_buffers = 256MB, effective_cache_size = 4GB (default), maintenance_work_mem = 64MB (default)."""

from __future__ import annotations

from typing import Any

import pytest

from pgpulse.doctor.check import Context, Options, Severity, SkipCheck
from pgpulse.doctor.checks.memory_settings import MemorySettingsCheck
from pgpulse.doctor.checks.settings import SettingsCheck
from pgpulse.doctor.runner import connect

GB = 1 << 30
MB = 1 << 20
CHECK = MemorySettingsCheck()


async def test_a_16gb_server_with_256mb_shared_buffers(db: str, run_check: Any) -> None:
    findings = {f.object: f for f in await run_check(db, CHECK, Options(memory_bytes=16 * GB))}
    assert set(findings) == {"setting shared_buffers", "setting maintenance_work_mem", "setting effective_cache_size"}
    assert findings["setting effective_cache_size"].title.startswith("effective_cache_size = 4.0 GB is under half")
    shared = findings["setting shared_buffers"]
    assert shared.severity is Severity.warning and shared.evidence["recommended"] == 4 * GB
    assert shared.fix == "ALTER SYSTEM SET shared_buffers = '4GB';  -- needs a restart"
    assert findings["setting maintenance_work_mem"].fix == (
        "ALTER SYSTEM SET maintenance_work_mem = '1024MB';\nSELECT pg_reload_conf();"
    )
    settings = {f.object for f in await run_check(db, SettingsCheck(), Options(memory_bytes=16 * GB))}
    assert "setting shared_buffers" not in settings and "setting work_mem" not in settings, "judged once"


async def test_threshold_edges_of_shared_buffers(db: str, run_check: Any) -> None:
    def shared(findings: list[Any]) -> list[Any]:
        return [f for f in findings if f.object == "setting shared_buffers"]

    # 256MB is exactly half of 2GB's recommendation (512MB): not under half
    assert shared(await run_check(db, CHECK, Options(memory_bytes=2 * GB))) == []
    [under] = shared(await run_check(db, CHECK, Options(memory_bytes=2 * GB + 16 * MB)))
    assert under.severity is Severity.warning
    # 256MB is over 40 % of 600MB: too much for that machine; effective_cache_size 4GB is more than its RAM
    small = {f.object: f for f in await run_check(db, CHECK, Options(memory_bytes=600 * MB))}
    assert "over 40 % of RAM" in small["setting shared_buffers"].title
    assert small["setting effective_cache_size"].severity is Severity.info


async def test_sized_for_1gb_is_healthy(db: str, execute: Any, run_check: Any) -> None:
    name = db.rsplit("/", 1)[1]
    await execute(db, f"ALTER DATABASE {name} SET effective_cache_size = '768MB'")
    assert await run_check(db, CHECK, Options(memory_bytes=GB)) == []


async def test_unknown_ram_is_a_skip_with_a_note(db: str) -> None:
    """A server that is not on this machine and no --memory: no guess, the check says what to pass."""
    conn, settings = await connect(db)
    try:
        ctx = Context(conn, 180000, "x", set(), set(), Options(), settings, memory_bytes=None)
        with pytest.raises(SkipCheck, match=r"RAM is unknown .*--memory 16GB"):
            await CHECK.run(ctx)
    finally:
        await conn.close()
