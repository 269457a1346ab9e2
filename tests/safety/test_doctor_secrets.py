"""Attack: no secret a query's text carries reaches ``pgpulse doctor``'s output, in any format.

pg_stat_statements replaces the constants of a statement by ``$1``… but keeps its comments: an app that tags its
queries (``/* token=… */``, sqlcommenter's ``/*traceparent=…,db_driver=…*/``) or a human who left a note in one
puts that text in ``pg_stat_statements.query`` verbatim. The doctor's top-queries check and the missing-index
check's statement list printed that text as it was, in the table, the JSON and the Markdown report (and in the
dashboard's doctor page, which shows the same findings).
"""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest
import pytest_asyncio

SECRET = "Hunter2CommentLeak"
SCAN = f"SELECT count(*) FROM accounts WHERE api_key = 'k1' /* token={SECRET} */"
TAGGED = f"SELECT /* token={SECRET} */ 1 -- and {SECRET}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db(make_database) -> str:  # type: ignore[no-untyped-def]
    url = str(await make_database("doctor_secrets", extensions=("pg_stat_statements",)))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, api_key text NOT NULL);"
            "INSERT INTO accounts SELECT g, 'k' || g FROM generate_series(1, 20000) g; ANALYZE accounts;"
            "SELECT pg_stat_statements_reset();"
        )
        for _ in range(30):  # a sequential scan of 20,000 rows, over and over: a missing-index finding
            await conn.execute(SCAN)
            await conn.execute(TAGGED)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()
    return url


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_comments_kept_by_pg_stat_statements_are_not_shown(db: str, fmt: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPULSE_DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "doctor", db, "-f", fmt, "--fail-on", "critical"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-1500:]
    assert "Traceback" not in output
    assert SECRET not in output, [line for line in output.splitlines() if SECRET in line]
    # the statements are still reported, as their shapes
    assert "SELECT count(*) FROM accounts WHERE api_key = $1" in output
    assert "top_queries" in output and "missing_indexes" in output
