"""Predicates a plain column index does not serve, on PostgreSQL 15 + HypoPG: an expression index for
``lower(email) = $1`` and ``payload ->> 'k' = …``, a partial index for a rare value of a skewed column, and an
existing expression index recognised as covering. Each asserts the exact CREATE INDEX and that the plan uses it.

Data: ``jobs``, 60,000 rows; ``status`` is 'done' for 98 %, 'queued' for 1.5 %, 'failed' for 0.5 %.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import EmbeddedPostgres

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE jobs (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    owner text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    payload jsonb NOT NULL
);
INSERT INTO jobs
SELECT g,
       'User' || g || '@Example.org',
       'Owner' || (g % 5000),
       CASE WHEN g % 200 = 0 THEN 'failed' WHEN g % 200 < 4 THEN 'queued' ELSE 'done' END,
       timestamptz '2026-01-01' + g * interval '1 minute',
       jsonb_build_object('k', 'v' || g, 'n', g % 10)
  FROM generate_series(1, 60000) g;
CREATE INDEX jobs_lower_owner ON jobs (lower(owner));
ANALYZE;
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def jobs(hypo_server: EmbeddedPostgres) -> AsyncIterator[str]:
    url = await create_database(hypo_server.url(), "predicates", replace=True)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    yield url


def _advice(advise: Any, url: str, statement: str) -> dict[str, Any]:
    code, out, err = advise(url, "-f", "json", "-q", statement)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(
    ("statement", "create"),
    [
        pytest.param(
            "SELECT * FROM jobs WHERE lower(email) = $1",
            "CREATE INDEX CONCURRENTLY ix_jobs_lower_email ON jobs ((lower(email)));",
            id="lower(email) = $1",
        ),
        pytest.param(
            "SELECT id FROM jobs WHERE payload ->> 'k' = 'v77'",
            "CREATE INDEX CONCURRENTLY ix_jobs_payload_k ON jobs ((payload ->> 'k'));",
            id="jsonb ->> key",
        ),
        pytest.param(
            "SELECT * FROM jobs WHERE status = 'failed' ORDER BY created_at DESC LIMIT 20",
            "CREATE INDEX CONCURRENTLY ix_jobs_created_at_partial ON jobs (created_at) WHERE status = 'failed';",
            id="rare value, then ORDER BY: partial index on the sort key",
        ),
        pytest.param(
            "SELECT count(*) FROM jobs WHERE status = 'failed'",
            "CREATE INDEX CONCURRENTLY ix_jobs_status_partial ON jobs (status) WHERE status = 'failed';",
            id="rare value alone: partial index",
        ),
    ],
)
def test_index_for_the_predicate(jobs: str, advise: Any, statement: str, create: str) -> None:
    doc = _advice(advise, jobs, statement)
    assert [r["create"] for r in doc["recommendations"]] == [create], [
        (q["status"], q["reason"]) for q in doc["queries"]
    ]
    verdict = doc["queries"][0]
    assert verdict["status"] == "improved" and verdict["index"] == doc["recommendations"][0]["name"]


def test_common_value_gets_no_partial_index(jobs: str, advise: Any) -> None:
    doc = _advice(advise, jobs, "SELECT * FROM jobs WHERE status = 'done' ORDER BY created_at LIMIT 20")
    # 98 % of the rows: a partial index would be nearly the whole table; the full composite serves it
    assert [r["create"] for r in doc["recommendations"]] == [
        "CREATE INDEX CONCURRENTLY ix_jobs_status_created_at ON jobs (status, created_at);"
    ]


def test_existing_expression_index_covers(jobs: str, advise: Any) -> None:
    doc = _advice(advise, jobs, "SELECT * FROM jobs WHERE lower(owner) = $1")
    assert doc["recommendations"] == []
    assert doc["queries"][0]["status"] == "covered" and "jobs_lower_owner" in doc["queries"][0]["reason"]
