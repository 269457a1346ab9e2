"""The advisor on a real PostgreSQL with HypoPG: each query pattern gets the index it needs, or none."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

SEED = "SELECT * FROM events WHERE account_id = $1 AND kind = 'buy' ORDER BY created_at DESC LIMIT 10"


def _advice(advise: Any, url: str, *queries: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    args: list[str] = [url, "-f", "json", *extra]
    for q in queries:
        args += ["-q", q]
    code, out, err = advise(*args)
    assert code == 0, err
    return json.loads(out)


def _columns(doc: dict[str, Any]) -> list[list[str]]:
    return [[c["name"] + (" DESC" if c["desc"] else "") for c in r["columns"]] for r in doc["recommendations"]]


def test_seed_query_gets_equality_columns_then_order_by_with_direction(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(advise, workload.url, SEED)
    assert _columns(doc) == [["account_id", "kind", "created_at DESC"]]
    rec = doc["recommendations"][0]
    assert rec["create"] == (
        "CREATE INDEX CONCURRENTLY ix_events_account_id_kind_created_at ON events (account_id, kind, created_at DESC);"
    )
    assert "postgresql_concurrently=True" in rec["alembic"] and 'sa.text("created_at DESC")' in rec["alembic"]
    assert rec["size_bytes"] > 1_000_000  # 200k rows: a few MB, estimated by HypoPG
    assert "every INSERT" in rec["write_cost"]
    query = rec["queries"][0]
    assert query["cost_factor"] >= 10  # the hot account (most common value) with LIMIT: orders of magnitude


def test_single_column_equality(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(advise, workload.url, "SELECT sum(amount) FROM events WHERE note = 'note 77'")
    assert _columns(doc) == [["note"]]


def test_equality_then_range(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(
        advise, workload.url, "SELECT id, amount FROM events WHERE account_id = 42 AND created_at >= $1 AND kind = $2"
    )
    cols = _columns(doc)
    assert len(cols) == 1
    assert cols[0][-1] == "created_at" and set(cols[0][:-1]) <= {"account_id", "kind"} and "account_id" in cols[0]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("created_at DESC", ["account_id", "created_at DESC"]),
        ("created_at", ["account_id", "created_at"]),
        ("amount DESC, created_at", ["account_id", "amount DESC", "created_at"]),
    ],
)
def test_order_by_direction_is_kept(workload, advise, order: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(advise, workload.url, f"SELECT * FROM events WHERE account_id = $1 ORDER BY {order} LIMIT 20")
    assert _columns(doc) == [expected]


def test_join_gets_the_index_on_the_foreign_key_side(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(
        advise,
        workload.url,
        "SELECT e.id, e.amount FROM accounts a JOIN events e ON e.account_id = a.id WHERE a.email = $1",
    )
    assert [r["table"] for r in doc["recommendations"]] == ["events"]
    assert _columns(doc) == [["account_id"]]


def test_query_already_served_by_an_index_needs_nothing(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(advise, workload.url, "SELECT * FROM accounts WHERE email = 'user7@example.org'")
    assert doc["recommendations"] == []
    assert doc["queries"][0]["status"] == "covered"
    assert "accounts_email_key" in doc["queries"][0]["reason"]


def test_tiny_table_needs_no_index(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(advise, workload.url, "SELECT value FROM kv_plain WHERE key = 'k3'")
    assert doc["recommendations"] == []
    assert doc["queries"][0]["status"] == "no-gain" and "tiny table" in doc["queries"][0]["reason"]


def test_unparseable_sql_is_reported_and_skipped(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(advise, workload.url, "SELEC * FROM events WHERE", SEED, "SELECT * FROM no_such_table WHERE a = 1")
    statuses = [q["status"] for q in doc["queries"]]
    assert statuses == ["skipped", "improved", "skipped"]
    assert "not valid PostgreSQL SQL" in doc["queries"][0]["reason"]
    assert "not found" in doc["queries"][2]["reason"]
    assert len(doc["recommendations"]) == 1


def test_fewest_indexes_one_index_serves_its_prefix_queries(workload, advise) -> None:  # type: ignore[no-untyped-def]
    doc = _advice(
        advise,
        workload.url,
        "SELECT * FROM events WHERE account_id = $1 AND kind = $2 ORDER BY created_at DESC LIMIT 10",
        "SELECT count(*) FROM events WHERE account_id = 77 AND kind = 'view'",
    )
    assert _columns(doc) == [["account_id", "kind", "created_at DESC"]]
    assert len(doc["recommendations"][0]["queries"]) == 2


def test_factor_option_rejects_small_gains(workload, advise) -> None:  # type: ignore[no-untyped-def]
    query = "SELECT * FROM events WHERE kind = 'buy' AND amount > 50"  # a third of the table matches
    doc = _advice(advise, workload.url, query, extra=("--factor", "1000"))
    assert doc["recommendations"] == [] and doc["queries"][0]["status"] == "no-gain"


def test_workload_from_pg_stat_statements_table_and_queryid(workload, advise) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async def run_queries() -> int:
        conn = await asyncpg.connect(workload.url)
        try:
            # the fixture's bulk load is not this workload's writes: without the reset its 200,000 inserts would
            # outweigh three executions' saving (and the index would rightly not be advised)
            await conn.execute("SELECT pg_stat_reset()")
            for account in (1, 5, 9):
                await conn.fetch(SEED, account)
            return int(
                await conn.fetchval(
                    "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT * FROM events WHERE account_id%'"
                    " ORDER BY calls DESC LIMIT 1"
                )
            )
        finally:
            await conn.close()

    queryid = asyncio.run(run_queries())
    by_table = _advice(advise, workload.url, extra=("--table", "events"))
    assert ["account_id", "kind", "created_at DESC"] in _columns(by_table)
    assert all("events" in q["query"] for q in by_table["queries"] if q["status"] != "skipped")
    by_id = _advice(advise, workload.url, extra=("--queryid", str(queryid)))
    assert len(by_id["queries"]) == 1 and by_id["queries"][0]["queryid"] == queryid
    assert _columns(by_id) == [["account_id", "kind", "created_at DESC"]]


def test_verbose_logs_every_step(workload, advise) -> None:  # type: ignore[no-untyped-def]
    code, _, err = advise(workload.url, "-q", SEED, "-v")
    assert code == 0
    for step in (
        "read 1 query",
        "verifying with hypopg",
        "with representative values",
        "cost now",
        "candidate (",
        "cost with (",
    ):
        assert step in err, step


def test_markdown_output(workload, advise) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = advise(workload.url, "-q", SEED, "-f", "markdown")
    assert code == 0 and out.startswith("# pgpulse advise") and "```sql" in out and "| improved |" in out


def test_advising_changes_nothing(workload, advise) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async def indexes() -> list[str]:
        conn = await asyncpg.connect(workload.url)
        try:
            return [r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes ORDER BY 1")]
        finally:
            await conn.close()

    before = asyncio.run(indexes())
    _advice(advise, workload.url, SEED, "SELECT * FROM events WHERE note = 'x'")
    assert asyncio.run(indexes()) == before


def test_a_role_without_privileges_gets_skips_and_hints_not_tracebacks(workload, advise) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from sqlalchemy.engine import make_url

    async def make_role() -> None:
        conn = await asyncpg.connect(workload.url)
        try:
            await conn.execute("DROP ROLE IF EXISTS advise_nopriv")
            await conn.execute("CREATE ROLE advise_nopriv LOGIN PASSWORD 'nopriv-pw'")
            await conn.fetch(SEED, 3)  # something in pg_stat_statements this role may not read
        finally:
            await conn.close()

    asyncio.run(make_role())
    url = make_url(workload.url).set(username="advise_nopriv", password="nopriv-pw").render_as_string(False)
    code, out, err = advise(url, "-q", SEED, "-f", "json")
    assert code == 0, err
    verdict = json.loads(out)["queries"][0]
    assert verdict["status"] == "skipped" and "permission denied" in verdict["reason"]
    code, _, err = advise(url)
    assert code in (0, 2) and "pg_read_all_stats" in err  # a warning if some of its own remain, else exit 2
