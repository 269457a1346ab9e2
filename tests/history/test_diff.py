"""A planted regression — an index dropped between two snapshots — is the first line of the diff (exit 1); a
quiet period is no regression (exit 0); bad input is one line and exit 2."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from pgpulse.cli import app

from .conftest import run, take, wait_stat

QUERY = "SELECT count(*) FROM orders WHERE customer = $1"
CALLS = 150


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def planted(make_database: Callable[..., Awaitable[str]], store_url: str) -> dict[str, str]:
    """Snapshots around a deploy that dropped the index a frequent query needs."""
    target = await make_database("hdiff", extensions=("pg_stat_statements",))
    await run(
        target,
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, note text)",
        "INSERT INTO orders SELECT g, g % 5000, 'n' FROM generate_series(1, 50000) g",
        "CREATE INDEX orders_customer ON orders (customer)",
        "ANALYZE orders",
        "CREATE TABLE tags (id int PRIMARY KEY, label text NOT NULL)",
        "INSERT INTO tags SELECT g, 'label ' || g FROM generate_series(1, 2000) g",
        "CREATE INDEX tags_label ON tags (label)",
        "ANALYZE tags",
        "CREATE TABLE churn (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off)",
        "INSERT INTO churn SELECT g, 0 FROM generate_series(1, 2000) g",
    )
    name = "planted"
    await take(target, store_url, name)
    await run(target, QUERY, repeat=CALLS, args=(42,))
    await run(target, "SELECT id FROM tags WHERE label = $1", repeat=3, args=("label 7",))
    await wait_stat(target, "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'tags_label'", 3)
    deploy = await take(target, store_url, name)
    await run(target, "DROP INDEX orders_customer")
    await run(target, QUERY, repeat=CALLS, args=(42,))
    # The deploy also stops using tags_label, churns a table autovacuum may not clean, and makes it grow.
    await run(target, "UPDATE churn SET v = v + 1", "INSERT INTO churn SELECT g, 0 FROM generate_series(2001, 8000) g")
    await wait_stat(target, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churn'", 2000)
    await take(target, store_url, name)
    conn = await asyncpg.connect(store_url)
    try:
        await conn.execute(
            "INSERT INTO pgpulse_history.mark (target_id, name, at) "
            "SELECT target_id, 'deploy-1', $1 FROM pgpulse_history.target WHERE name = $2",
            deploy.taken_at,
            name,
        )
    finally:
        await conn.close()
    return {"target": target, "name": name}


def test_dropped_index_makes_the_slower_query_the_first_line_and_exit_1(
    planted: dict[str, str], store_url: str
) -> None:
    result = CliRunner().invoke(
        app,
        ["history", "diff", "--store", store_url, "--target", planted["name"], "--baseline", "deploy-1", "-f", "json"],
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    first = report["findings"][0]
    assert first["kind"] == "slower_query"
    assert first["subject"] == QUERY
    assert first["evidence"]["calls_before"] == CALLS
    assert first["evidence"]["calls_after"] == CALLS
    assert first["evidence"]["ratio"] >= 2
    assert report["regressions"] is True


def test_the_same_diff_finds_the_unused_index_the_dead_tuples_and_the_growth(
    planted: dict[str, str], store_url: str
) -> None:
    thresholds = ["--dead-min", "1000", "--dead-pct", "10", "--grow-pct", "50", "--grow-min-mb", "0.1"]
    args = ["history", "diff", "--store", store_url, "--target", planted["name"], "--baseline", "deploy-1"]
    result = CliRunner().invoke(app, [*args, *thresholds, "-f", "json"])
    assert result.exit_code == 1, result.output
    findings = [(f["kind"], f["subject"]) for f in json.loads(result.stdout)["findings"]]
    relations = [f for f in findings if f[0] not in ("slower_query", "new_top_query")]
    assert relations == [
        ("unused_index", "public.tags_label"),
        ("dead_tuples", "public.churn"),
        ("table_grew", "public.churn"),
        ("index_grew", "public.churn_pkey"),
    ]
    assert findings[0] == ("slower_query", QUERY)


def test_markdown_and_table_lead_with_the_same_regression(planted: dict[str, str], store_url: str) -> None:
    args = ["history", "diff", "--store", store_url, "--target", planted["name"], "--baseline", "deploy-1"]
    markdown = CliRunner().invoke(app, [*args, "-f", "markdown"])
    assert markdown.exit_code == 1
    rows = [line for line in markdown.stdout.splitlines() if line.startswith("| 1 |")]
    assert rows == [rows[0]] and "slower query" in rows[0] and QUERY in rows[0]
    table = CliRunner().invoke(app, [*args, "-f", "table"], env={"COLUMNS": "200"})
    assert table.exit_code == 1
    assert "slower query" in table.stdout.split("│ 1 │", 1)[1].splitlines()[0]


def test_a_window_without_changes_is_no_regression(planted: dict[str, str], store_url: str) -> None:
    # Both windows end before the first workload ran: nothing was counted, nothing regressed.
    result = CliRunner().invoke(
        app,
        [
            "history",
            "diff",
            "--store",
            store_url,
            "--target",
            planted["name"],
            "--between",
            "2000-01-01T00:00:00",
            "2000-01-02T00:00:00",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["findings"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2 hours"], "not a duration"),
        (["--since", "2h", "--baseline", "x"], "exactly one of"),
        (["--baseline", "no-such-mark"], "no mark named 'no-such-mark'"),
        (["--between", "yesterday", "now"], "not a time"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    planted: dict[str, str], store_url: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["history", "diff", "--store", store_url, "--target", planted["name"], *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
