"""Containment, key existence and full-text match want GIN, which HypoPG cannot cost: on PostgreSQL 15 + HypoPG
the verdict says so (with the index that would serve), and with ``--allow-build`` on the embedded PostgreSQL 18
the same index is verified by a rolled-back build and advised."""

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
CREATE TABLE docs (id int PRIMARY KEY, tags text[] NOT NULL, payload jsonb NOT NULL, body text NOT NULL);
INSERT INTO docs
SELECT g, ARRAY['t' || (g % 500), 'all'], jsonb_build_object('n', g % 1000, 'k', 'v' || g),
       'word' || (g % 700) || ' common text here'
  FROM generate_series(1, 30000) g;
ANALYZE docs;
"""
TAGS = "SELECT id FROM docs WHERE tags @> ARRAY['t7']"
TAGS_INDEX = "CREATE INDEX CONCURRENTLY ix_docs_tags_gin ON docs USING gin (tags);"
FULL_TEXT = "SELECT id FROM docs WHERE to_tsvector('english', body) @@ to_tsquery('english', 'word7')"
FULL_TEXT_INDEX = (
    "CREATE INDEX CONCURRENTLY ix_docs_to_tsvector_english_body_gin ON docs USING gin ((to_tsvector('english', body)));"
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hypo_docs(hypo_server: EmbeddedPostgres) -> AsyncIterator[str]:
    url = await create_database(hypo_server.url(), "gin_docs", replace=True)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION hypopg;" + SCHEMA)
    finally:
        await conn.close()
    yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def built_docs(make_database: Any) -> AsyncIterator[str]:
    url = await make_database("gin_docs")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    yield url


def _advice(advise: Any, *args: str) -> dict[str, Any]:
    code, out, err = advise(*args, "-f", "json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(("statement", "create"), [(TAGS, TAGS_INDEX), (FULL_TEXT, FULL_TEXT_INDEX)])
def test_hypopg_cannot_cost_gin_and_says_so(hypo_docs: str, advise: Any, statement: str, create: str) -> None:
    doc = _advice(advise, hypo_docs, "-q", statement)
    assert doc["recommendations"] == []
    verdict = doc["queries"][0]
    assert verdict["status"] == "skipped"
    assert verdict["reason"] == (
        f"not verifiable here: {create.rstrip(';')} would serve it, but HypoPG cannot cost GIN indexes; "
        "verify it with --allow-build on a disposable copy"
    )


@pytest.mark.parametrize(("statement", "create"), [(TAGS, TAGS_INDEX), (FULL_TEXT, FULL_TEXT_INDEX)])
def test_a_rolled_back_build_verifies_gin(built_docs: str, advise: Any, statement: str, create: str) -> None:
    doc = _advice(advise, built_docs, "-q", statement, "--allow-build")
    assert [r["create"] for r in doc["recommendations"]] == [create], doc["queries"][0]["reason"]
    verdict = doc["queries"][0]
    assert verdict["status"] == "improved" and verdict["cost_factor"] >= 2
