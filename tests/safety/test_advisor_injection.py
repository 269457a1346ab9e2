"""Attack: pg_stats values crafted by an application's users must never become SQL.

The old advisor wrote the most common value of a column into the query text in place of ``$n`` (also inside
literals and comments) and sent it through the simple protocol: ``'); COMMIT; BEGIN READ WRITE; DROP TABLE
victim; COMMIT; --`` dropped a table in "read-only" mode, with HypoPG and without ``--apply``. Now every value
is a bound parameter. Each test asserts the database is exactly as before (relation OIDs, row counts, write
counters, sequences, no lock left) and that no output format shows a crafted value.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
import pytest_asyncio

from pgpulse.db.databases import create_database

from . import advisor_attack as attack  # a helper module beside the tests, shared by the four files


async def _setup(url: str, hypopg: bool) -> str:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(attack.schema(hypopg))
        for column, value in attack.CRAFTED.items():  # the crafted value really is the MCV the advisor reads
            mcv = await conn.fetchval(
                "SELECT (most_common_vals::text::text[])[1] FROM pg_stats WHERE tablename = 'bait' AND attname = $1",
                column,
            )
            assert mcv == value, column
    finally:
        await conn.close()
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hypo_db(hypo_server) -> str:  # type: ignore[no-untyped-def]
    return await _setup(await create_database(hypo_server.url(), "advisor_attack", replace=True), hypopg=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def build_db(make_database) -> str:  # type: ignore[no-untyped-def]
    return await _setup(await make_database("advisor_attack"), hypopg=False)


def _assert_untouched(before, after) -> None:  # type: ignore[no-untyped-def]
    assert after.relations == before.relations  # no table dropped or created, same OIDs
    assert after.rows == before.rows
    assert after.writes == before.writes
    assert after.sequences == before.sequences
    assert after.foreign_locks == 0
    assert after.schemas == before.schemas


@pytest.mark.parametrize("fmt", ["json", "markdown", "table"])
def test_crafted_mcvs_with_hypopg_change_nothing_and_never_show(hypo_db: str, fmt: str) -> None:
    before = asyncio.run(attack.snapshot(hypo_db))
    code, out, err = attack.run_advise(hypo_db, *attack.args_for(attack.QUERIES), "-f", fmt, "-v")
    after = asyncio.run(attack.snapshot(hypo_db))
    assert code == 0, err
    _assert_untouched(before, after)
    assert after.relations["victim"] == before.relations["victim"]
    assert attack.leaked(out + err) == []
    assert "Traceback" not in err
    if fmt == "json":
        doc = json.loads(out)
        assert len(doc["queries"]) == len(attack.QUERIES)
        by_query = [q["status"] for q in doc["queries"]]
        # every statement was costed (nothing refused, nothing crashed); the hot crafted value makes an index
        # on its column worth it for the bound (non-generic) statements
        assert all(s in ("improved", "no-gain", "covered") for s in by_query), doc["queries"]
        assert doc["queries"][5]["generic_plan"] is False and doc["queries"][0]["generic_plan"] is True


def test_crafted_mcvs_with_a_rolled_back_build_and_measure_change_nothing(build_db: str) -> None:
    before = asyncio.run(attack.snapshot(build_db))
    code, out, err = attack.run_advise(
        build_db, *attack.args_for(attack.QUERIES), "--allow-build", "--measure", "-f", "json", "-v"
    )
    after = asyncio.run(attack.snapshot(build_db))
    assert code == 0, err
    _assert_untouched(before, after)
    assert attack.leaked(out + err) == []
    doc = json.loads(out)
    assert doc["method"] == "build"
    measured = [q for q in doc["queries"] if q["measured_before_ms"] is not None]
    assert measured, doc["queries"]  # the bound statements really ran (read-only, rolled back)
