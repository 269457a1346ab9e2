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


EDGE_RULES = {
    "log_min_duration_statement",
    "random_page_cost",
    "idle_in_transaction_session_timeout",
    "statement_timeout",
}


async def test_rule_edges_set_per_database(make_database: Any, execute: Any, run_check: Any) -> None:
    """Each rule's edge, from the rule's documented condition: slow-query logging off is -1 (0 logs every
    statement), random_page_cost 4 is the spinning-disk value (3.99 is already tuned), a timeout of 0 is none
    (any positive value is one; 1s rather than 1ms so the doctor's own first statements are not cancelled)."""
    at_edge, past_edge = await make_database("edge"), await make_database("edge")
    values = {
        at_edge: ("-1", "4", "0", "0"),
        past_edge: ("0", "3.99", "1s", "1s"),
    }
    for url, (log_min, page_cost, idle, statement) in values.items():
        name = url.rsplit("/", 1)[1]
        await execute(
            url,
            f"ALTER DATABASE {name} SET log_min_duration_statement = {log_min}",
            f"ALTER DATABASE {name} SET random_page_cost = {page_cost}",
            f"ALTER DATABASE {name} SET idle_in_transaction_session_timeout = '{idle}'",
            f"ALTER DATABASE {name} SET statement_timeout = '{statement}'",
        )
    fired = {f.object.removeprefix("setting "): f for f in await run_check(at_edge, CHECK)}
    assert set(fired) >= EDGE_RULES
    assert fired["log_min_duration_statement"].severity is Severity.warning
    assert fired["idle_in_transaction_session_timeout"].severity is Severity.warning
    assert fired["random_page_cost"].severity is Severity.info
    assert fired["statement_timeout"].severity is Severity.info
    assert fired["statement_timeout"].evidence == {"statement_timeout": "0 (ms)"}
    quiet = {f.object.removeprefix("setting ") for f in await run_check(past_edge, CHECK)}
    assert quiet & EDGE_RULES == set()
