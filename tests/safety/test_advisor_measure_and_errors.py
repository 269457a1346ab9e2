"""Attacks on ``advise --measure`` (EXPLAIN ANALYZE executes the statement) and inputs that used to end the run
in a traceback.

``--measure`` runs a statement only when nothing in it can write or lock: DML, ``FOR UPDATE``, a data-modifying
``WITH``, ``SELECT … INTO`` and every VOLATILE function (``nextval``, ``set_config``, ``pg_terminate_backend``,
a user's own) are reported with their estimated cost and the reason instead. Whatever is thrown at it, one
query's failure is that query's verdict.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from pgpulse.db.databases import create_database

from . import advisor_attack as attack  # a helper module beside the tests, shared by the four files

WIDE_COLUMNS = ", ".join(f"c{i} int" for i in range(40))
WIDE_VALUES = ", ".join(f"g % {i + 2}" for i in range(40))
SCHEMA = f"""
CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL, note text NOT NULL, p point, j json);
INSERT INTO items SELECT g, g % 2000, 'note ' || g, point(g, g), '{{}}' FROM generate_series(1, 20000) g;
CREATE TABLE locked_t (id int, owner int NOT NULL);
INSERT INTO locked_t SELECT g, g % 2000 FROM generate_series(1, 20000) g;
CREATE TABLE wide ({WIDE_COLUMNS});
INSERT INTO wide SELECT {WIDE_VALUES} FROM generate_series(1, 5000) g;
CREATE SEQUENCE s;
CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE VIEW "Vol" AS SELECT id FROM items WHERE bump() = 1;
ANALYZE;
"""


async def _setup(url: str, hypopg: bool) -> str:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(("CREATE EXTENSION IF NOT EXISTS hypopg;" if hypopg else "") + SCHEMA)
    finally:
        await conn.close()
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hypo_db(hypo_server) -> str:  # type: ignore[no-untyped-def]
    return await _setup(await create_database(hypo_server.url(), "advisor_measure", replace=True), hypopg=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def build_db(make_database) -> str:  # type: ignore[no-untyped-def]
    return await _setup(await make_database("advisor_measure"), hypopg=False)


def _verdicts(out: str) -> dict[str, dict[str, Any]]:
    return {q["query"]: q for q in json.loads(out)["queries"]}


@pytest.mark.parametrize("method", ["hypopg", "build"])
def test_measure_never_executes_what_can_write_or_lock(method: str, request: pytest.FixtureRequest) -> None:
    url: str = request.getfixturevalue("hypo_db" if method == "hypopg" else "build_db")

    async def bystander_pid() -> tuple[asyncpg.Connection, int]:
        conn = await asyncpg.connect(url)
        return conn, int(await conn.fetchval("SELECT pg_backend_pid()"))

    loop = asyncio.new_event_loop()
    try:
        bystander, pid = loop.run_until_complete(bystander_pid())
        # reason each statement must not run, as the spec words it
        expected = {
            "UPDATE items SET note = 'x' WHERE owner = 5": "UPDATE writes rows",
            "DELETE FROM items WHERE owner = 6": "DELETE writes rows",
            "SELECT * FROM items WHERE owner = 7 FOR UPDATE": "FOR UPDATE/SHARE",
            "SELECT * FROM items WHERE owner = 7 FOR KEY SHARE": "FOR UPDATE/SHARE",
            "SELECT nextval('s'), * FROM items WHERE owner = 8": "nextval",
            f"SELECT * FROM items WHERE owner = 9 AND pg_terminate_backend({pid})": "pg_terminate_backend",
            "SELECT set_config('work_mem', '1MB', false), * FROM items WHERE owner = 10": "set_config",
            "SELECT bump(), * FROM items WHERE owner = 11": "bump",
            "SELECT public.bump() AS b, * FROM items WHERE owner = 11": "bump",
            'SELECT * FROM items WHERE owner = 12 AND id IN (SELECT id FROM "Vol")': "not a plain table",
            "WITH d AS (DELETE FROM items WHERE id = 1 RETURNING *) SELECT * FROM items WHERE owner = 13 "
            "AND id IN (SELECT id FROM d)": "data-modifying WITH (DELETE)",
        }
        # runs (nothing in it can write) but fails at run time: the estimate stays, with why it was not timed
        expected["SELECT * FROM items WHERE owner = 15 AND 1 / (id - id) = 1"] = "running it failed"
        safe = "SELECT * FROM items WHERE owner = 14"
        before = loop.run_until_complete(_snapshot_without(url, bystander))
        args = ["--allow-build"] if method == "build" else []
        code, out, err = attack.run_advise(url, *attack.args_for([*expected, safe]), "--measure", "-f", "json", *args)
        assert code == 0, err
        verdicts = list(json.loads(out)["queries"])
        assert len(verdicts) == len(expected) + 1
        for verdict, reason in zip(verdicts, expected.values(), strict=False):
            assert verdict["measured_before_ms"] is None and verdict["measured_after_ms"] is None, verdict
            assert reason in (verdict["not_measured"] or ""), verdict
            assert verdict["cost_before"] is not None, verdict  # the estimate is still reported
        assert verdicts[-1]["measured_before_ms"] is not None and verdicts[-1]["not_measured"] is None
        assert loop.run_until_complete(bystander.fetchval("SELECT 1")) == 1  # not terminated
        after = loop.run_until_complete(_snapshot_without(url, bystander))
        assert after == before
    finally:
        loop.run_until_complete(bystander.close())
        loop.close()


async def _snapshot_without(url: str, bystander: asyncpg.Connection) -> Any:
    """The database's state while the bystander stays connected (it is idle: no lock, no write)."""
    conn = await asyncpg.connect(url)
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND pid <> $1",
            bystander.get_server_pid(),
        ):
            assert asyncio.get_running_loop().time() < deadline, "the advisor's session did not end"
            await conn.execute("SELECT pg_sleep(0.05)")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return (
            await conn.fetch("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY 1"),
            await conn.fetch("SELECT last_value, is_called FROM s"),
            await conn.fetch("SELECT count(*), sum(hashtext(note)) FROM items"),
            await conn.fetch(
                "SELECT relname, oid FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1"
            ),
            await conn.fetchval("SELECT current_setting('work_mem')"),
            # locks a client session holds in this database (the server is shared with other tests' databases,
            # and autovacuum's own locks come and go: neither is something the advisor left behind)
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.pid <> pg_backend_pid() AND a.backend_type = 'client backend' "
                "AND a.datname = current_database()"
            ),
        )
    finally:
        await conn.close()


def test_hostile_inputs_are_verdicts_not_tracebacks(hypo_db: str) -> None:
    async def lock_table() -> tuple[asyncpg.Connection, Any]:
        conn = await asyncpg.connect(hypo_db)
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE locked_t IN ACCESS EXCLUSIVE MODE")
        return conn, tx

    wide = "SELECT * FROM wide WHERE " + " AND ".join(f"c{i} = {i}" for i in range(40))
    queries = {
        "SELECT * FROM items WHERE p IS NULL": ("skipped", "no default operator class"),
        # json has no B-tree operator class, so only the ORDER BY is indexable, and the primary key serves it
        "SELECT * FROM items WHERE j IS NULL ORDER BY id": ("covered", "items_pkey"),
        "SELECT * FROM locked_t WHERE owner = 5": ("skipped", "table locked"),
        "SELECT * FROM items WHERE note = '$300000000'": ("improved", "equality on note"),
        "SELECT * FROM items WHERE note = $300000000": ("skipped", "more parameters than pgpulse binds"),
        "SELECT * INTO stolen FROM items WHERE owner = 3": ("skipped", "SELECT … INTO creates a table"),
        "COMMIT": ("skipped", "TransactionStmt"),
        "BEGIN READ WRITE": ("skipped", "TransactionStmt"),
        "DROP TABLE items": ("skipped", "DropStmt"),
        "SELEC * FROM items": ("skipped", "not valid PostgreSQL SQL"),
        "SELECT * FROM items WHERE owner = (SELECT 1": ("skipped", "not valid PostgreSQL SQL"),
    }
    loop = asyncio.new_event_loop()
    holder, tx = loop.run_until_complete(lock_table())
    try:
        code, out, err = attack.run_advise(hypo_db, *attack.args_for([*queries, wide]), "-f", "json")
    finally:
        loop.run_until_complete(tx.rollback())
        loop.run_until_complete(holder.close())
        loop.close()
    assert code == 0, err
    verdicts = json.loads(out)["queries"]
    assert len(verdicts) == len(queries) + 1
    for verdict, (status, reason) in zip(verdicts, queries.values(), strict=False):
        assert (verdict["status"], reason in verdict["reason"]) == (status, True), verdict
    # 40 equality columns: the full key is over HypoPG's 32 columns (refused), a shorter one still costs
    assert verdicts[-1]["status"] in ("improved", "no-gain"), verdicts[-1]
    snapshot = asyncio.run(attack.snapshot(hypo_db))
    assert "stolen" not in snapshot.relations and snapshot.foreign_locks == 0


def test_auto_explain_logging_every_plan_does_not_break_hypopg(hypo_db: str) -> None:
    # auto_explain loaded into the session with log_min_duration = 0: it cannot print a hypothetical index
    # ("cache lookup failed for index"), so the advisor turns it off for its own session.
    url = hypo_db + "?session_preload_libraries=auto_explain&auto_explain.log_min_duration=0"
    code, out, err = attack.run_advise(url, "-q", "SELECT * FROM items WHERE owner = 42", "-f", "json", "-v")
    assert code == 0, err
    assert "auto_explain is active" in err
    verdict = json.loads(out)["queries"][0]
    assert verdict["status"] == "improved" and verdict["index"] == "ix_items_owner", verdict


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "cannot parse database URL"),
        ("http://example.org/db", "is not PostgreSQL"),
        ("mysql://u:hunter2@localhost/db", "is not PostgreSQL"),
        ("postgresql://u:hunter2@127.0.0.1:1/db?password=hunter3&sslpassword=hunter4", "cannot connect"),
        ("postgresql://u:hunter2@localhost:99999/db", "error:"),
    ],
)
def test_bad_urls_are_one_line_without_the_password(url: str, message: str) -> None:
    code, out, err = attack.run_advise(url, "-q", "SELECT * FROM t WHERE a = 1")
    assert code == 2
    assert message in err and err.count("\n") == 1 and out == ""
    assert "hunter" not in err
