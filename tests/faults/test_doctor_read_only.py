"""Data safety: the doctor never writes. It runs as a read-only monitoring role against a database armed with
write traps, and three independent witnesses must agree that nothing was written:

* a statement trigger on every table and an event trigger on every DDL raise ``pgpulse-guard``: a write
  attempt would surface as a skipped check naming the guard (or a crash);
* ``default_transaction_read_only`` on the role: a write attempt would surface as a read-only error;
* pg_stat_statements (every statement the role ran is a read) and pg_stat_database (rows inserted, updated,
  deleted unchanged).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from pgpulse.db.databases import create_database

ROLE, SECRET = "doctor_ro", "ro-secret-pw"
READ_STATEMENT = re.compile(r"^\s*(SELECT|WITH|SHOW|SET|RESET|BEGIN|START|COMMIT|ROLLBACK|EXPLAIN|VALUES)\b", re.I)

SETUP = [
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE EXTENSION IF NOT EXISTS pgstattuple",
    "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text, balance int, note text)",
    "INSERT INTO accounts SELECT g, 'o' || g % 50, g % 1000, repeat('n', 100) FROM generate_series(1, 20000) g",
    "CREATE INDEX accounts_owner ON accounts (owner)",
    "CREATE INDEX accounts_owner_dup ON accounts (owner)",
    "CREATE INDEX accounts_balance_unused ON accounts (balance)",
    "DELETE FROM accounts WHERE id % 3 = 0",  # dead tuples for the vacuum and bloat checks
    "SELECT count(*) FROM accounts WHERE note = 'x'",  # a sequential scan for the missing-index check
    """CREATE FUNCTION pgpulse_guard() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'pgpulse-guard: % on % by %', TG_OP, TG_TABLE_NAME, current_user; END $$""",
    """CREATE TRIGGER accounts_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
       FOR EACH STATEMENT EXECUTE FUNCTION pgpulse_guard()""",
    """CREATE FUNCTION pgpulse_guard_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'pgpulse-guard: DDL % by %', tg_tag, current_user; END $$""",
    "CREATE EVENT TRIGGER pgpulse_guard_ddl ON ddl_command_start EXECUTE FUNCTION pgpulse_guard_ddl()",
    f"DROP ROLE IF EXISTS {ROLE}",
    f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SECRET}' IN ROLE pg_read_all_stats",
    f"ALTER ROLE {ROLE} SET default_transaction_read_only = on",
]

OTHER_CLIENTS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
)
COUNTERS = "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def armed_db(citizen_db: Any) -> Any:
    name = "doctor_readonly"
    url = await create_database(citizen_db.server.url(), name, replace=True)
    conn = await asyncpg.connect(url)
    try:
        for statement in SETUP:
            await conn.execute(statement)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()
    yield url
    admin = await asyncpg.connect(citizen_db.server.url())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {ROLE}")
    finally:
        await admin.close()


async def _wait_until_alone(conn: asyncpg.Connection, timeout: float = 15.0) -> None:
    """Until no other client is connected to this database: a session flushes its statistics before its
    backend leaves pg_stat_activity, so from then on pg_stat_database holds everything the others wrote."""
    deadline = time.monotonic() + timeout
    while others := await conn.fetchval(OTHER_CLIENTS):
        assert time.monotonic() < deadline, f"{others} other sessions still connected after {timeout} s"
        await asyncio.sleep(0.02)


async def _written_rows(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(await conn.fetchval(COUNTERS))


async def test_the_traps_bite(armed_db: str) -> None:
    """Without this, a silent trap would make the real test pass for the wrong reason."""
    admin = await asyncpg.connect(armed_db)
    try:
        with pytest.raises(asyncpg.RaiseError, match="pgpulse-guard"):
            await admin.execute("UPDATE accounts SET balance = 0 WHERE id = 1")
        with pytest.raises(asyncpg.RaiseError, match="pgpulse-guard: DDL"):
            await admin.execute("CREATE TABLE sneaky (id int)")
    finally:
        await admin.close()
    ro = await asyncpg.connect(make_url(armed_db).set(username=ROLE, password=SECRET).render_as_string(False))
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await ro.execute("CREATE TEMP TABLE t (id int)")
    finally:
        await ro.close()


async def test_the_doctor_writes_nothing(armed_db: str, run_doctor: Any) -> None:
    admin = await asyncpg.connect(armed_db)
    try:
        await admin.execute("SELECT pg_stat_statements_reset()")
        await admin.execute("SELECT pg_stat_force_next_flush()")
        await _wait_until_alone(admin)  # the fixture's and the previous test's sessions have flushed
        before = await _written_rows(admin)
        url = make_url(armed_db).set(username=ROLE, password=SECRET).render_as_string(hide_password=False)
        result = await asyncio.to_thread(run_doctor, url, "--format", "json")
        assert result.returncode == 1, result.stderr  # the duplicate index is a warning: the default --fail-on
        assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr
        report = json.loads(result.stdout)
        reasons = [c["skipped"] for c in report["checks"] if c.get("skipped")]
        assert not any("pgpulse-guard" in r or "read-only" in r for r in reasons), reasons
        found = {f["check"] for f in report["findings"]}
        assert {"duplicate_indexes", "unused_indexes"} <= found, "the doctor really inspected the database"

        await _wait_until_alone(admin)  # the doctor's backends have exited, so their statistics are flushed
        assert await _written_rows(admin) == before, "rows were inserted, updated or deleted"
        statements = await admin.fetch(
            "SELECT query, calls, rows FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
            "WHERE r.rolname = $1 AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            ROLE,
        )
    finally:
        await admin.close()
    assert len(statements) >= 10, "pg_stat_statements saw the doctor's queries"
    writes = [s["query"] for s in statements if not READ_STATEMENT.match(s["query"])]
    assert writes == [], writes
