"""No false alarms: a production-like clean database gets zero warnings from every check.

Clean means what a careful team ships: every table has a primary key, every foreign key its index, the
data is vacuumed and analyzed after the load, the workload uses its indexes, pg_stat_statements is on, and
the settings a database owner can set per database are tuned. Server-wide settings are judged against
what this test server is sized for: it runs with shared_buffers = 256MB, so it is audited as a 1 GB
machine (``--memory 1GB``, pgtune's 25 %) rather than against the RAM of the CI host it happens to share.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from pgpulse.doctor.check import Options, Severity
from pgpulse.doctor.runner import run_checks

GIB = 1 << 30


async def test_a_clean_production_like_database_has_no_warnings(db: str, execute: Any) -> None:
    name = db.rsplit("/", 1)[1]
    await execute(
        db,
        "CREATE EXTENSION pg_stat_statements",
        *[
            f"ALTER DATABASE {name} SET {setting}"
            for setting in (
                "log_min_duration_statement = '250ms'",
                "track_io_timing = on",
                "work_mem = '16MB'",
                "random_page_cost = 1.1",
                "idle_in_transaction_session_timeout = '60s'",
                "statement_timeout = '30s'",
            )
        ],
        "CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE)",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id),"
        " total numeric(12, 2) NOT NULL CHECK (total >= 0), created_at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX ix_orders_account_created ON orders (account_id, created_at)",
        "INSERT INTO accounts (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 2000) g",
        "INSERT INTO orders (account_id, total) SELECT 1 + g % 2000, g % 500 FROM generate_series(1, 20000) g",
    )
    await execute(db, "VACUUM ANALYZE accounts, orders")
    await execute(db, "SELECT pg_stat_statements_reset()")
    conn = await asyncpg.connect(db)
    try:  # the application's workload: index lookups, many calls, each fast
        for account in range(1, 201):
            await conn.fetch("SELECT id, email FROM accounts WHERE id = $1", account)
            await conn.fetch(
                "SELECT id, total FROM orders WHERE account_id = $1 ORDER BY created_at DESC LIMIT 10", account
            )
            await conn.fetchval("SELECT id FROM accounts WHERE email = $1", f"user{account}@example.com")
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()
    report = await run_checks(db, Options(app_workers=2, pool_size=5, max_overflow=5, memory_bytes=GIB))
    assert [r.name for r in report.results if r.skipped] == []
    loud = [(f.check, f.object, f.title) for f in report.findings if f.severity >= Severity.warning]
    assert loud == []
