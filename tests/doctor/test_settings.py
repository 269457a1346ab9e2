from __future__ import annotations

from typing import Any

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.settings import SettingsCheck

CHECK = SettingsCheck()


async def test_default_settings_are_reported_with_alter_system(db: str, run_check: Any) -> None:
    findings = {f.object: f for f in await run_check(db, CHECK)}
    log = findings["setting log_min_duration_statement"]
    assert log.severity is Severity.warning and "log_min_duration_statement = '250ms'" in (log.fix or "")
    assert {"setting idle_in_transaction_session_timeout", "setting random_page_cost", "setting track_io_timing",
            "setting statement_timeout"} <= set(findings)  # fmt: skip
    # the server listens on this machine's loopback, so its RAM is known: memory_settings judges work_mem
    assert "setting work_mem" not in findings
    assert "setting shared_buffers" not in findings  # the test server runs with 256MB


async def test_tuned_settings_are_healthy(db: str, execute: Any, run_check: Any) -> None:
    name = db.rsplit("/", 1)[1]
    await execute(
        db,
        f"ALTER DATABASE {name} SET log_min_duration_statement = '250ms'",
        f"ALTER DATABASE {name} SET track_io_timing = on",
        f"ALTER DATABASE {name} SET work_mem = '16MB'",
        f"ALTER DATABASE {name} SET random_page_cost = 1.1",
        f"ALTER DATABASE {name} SET idle_in_transaction_session_timeout = '60s'",
        f"ALTER DATABASE {name} SET statement_timeout = '30s'",
    )
    assert await run_check(db, CHECK) == []
