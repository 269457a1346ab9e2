"""A PostgreSQL with HypoPG (Debian's PostgreSQL 15 + postgresql-15-hypopg, which scripts/test.sh installs), and
a workload database on it whose tables are big enough for indexes to matter.

The embedded PostgreSQL 18 has no HypoPG; it serves the tests of the ``--allow-build`` path and of the errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from pgpulse.cli import app
from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import EmbeddedPostgres

# The PostgreSQL 15 + HypoPG server itself (``hypo_server``) is in tests/conftest.py: tests/safety shares it.

# accounts: 2,000 rows; events: 200,000 rows, 30% of them on account 1 (a hot key), 3 kinds, amounts and
# timestamps spread over a year; kv: 20 rows (a tiny table no index can help).
SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE accounts (id int PRIMARY KEY, email text UNIQUE NOT NULL, region text NOT NULL);
INSERT INTO accounts SELECT g, 'user' || g || '@example.org', 'r' || (g % 7) FROM generate_series(1, 2000) g;
CREATE TABLE events (
    id bigint PRIMARY KEY,
    account_id int NOT NULL REFERENCES accounts (id),
    kind text NOT NULL,
    amount numeric NOT NULL,
    created_at timestamptz NOT NULL,
    note text
);
INSERT INTO events
SELECT g,
       CASE WHEN g % 10 < 3 THEN 1 ELSE 2 + (hashint4(g) & 2147483647) % 1999 END,
       (ARRAY['click', 'view', 'buy'])[1 + g % 3],
       (hashint4(g * 7) & 1023) / 10.0,
       timestamptz '2026-01-01' + (hashint4(g * 13) & 2147483647) % 31536000 * interval '1 second',
       'note ' || g
  FROM generate_series(1, 200000) g;
CREATE TABLE kv (key text PRIMARY KEY, value text);
CREATE TABLE kv_plain (key text, value text);
INSERT INTO kv SELECT 'k' || g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO kv_plain SELECT 'k' || g, 'v' || g FROM generate_series(1, 20) g;
-- Deterministic statistics, so the planner's costs are the same on every run: every row sampled (a target of
-- 1000 samples 300,000 rows) and no autovacuum ANALYZE (a random sample) landing in the middle of a test.
ALTER TABLE accounts SET (autovacuum_enabled = off);
ALTER TABLE events SET (autovacuum_enabled = off);
SET default_statistics_target = 1000;
ANALYZE;
"""


@dataclass
class Workload:
    url: str  # libpq DSN of the workload database (HypoPG enabled)


@pytest.fixture(scope="session")
def advisor_schema() -> str:
    return SCHEMA


async def _make_db(server_url: str, name: str, schema: str) -> str:
    url = await create_database(server_url, name, replace=True)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(schema)
    finally:
        await conn.close()
    return url


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def workload(hypo_server: EmbeddedPostgres) -> AsyncIterator[Workload]:
    yield Workload(await _make_db(hypo_server.url(), "workload", SCHEMA))


@pytest_asyncio.fixture(loop_scope="session")
async def scratch(hypo_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh copy of the workload schema for tests that change it (--apply)."""
    yield await _make_db(hypo_server.url(), "scratch", SCHEMA)


@pytest.fixture
def advise() -> object:
    """Run ``pgpulse advise`` in-process; returns (exit code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["advise", *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run
