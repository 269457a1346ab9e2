"""No secret a server log holds reaches any output of ``pgpulse logs``: table, JSON or Markdown.

A real PostgreSQL 18 writes the logs (stderr, csvlog and jsonlog at once, auto_explain loaded, every statement
timed) while a hostile workload puts one secret in every place it can hide: bound parameters (``DETAIL:
parameters``, auto_explain's ``Query Parameters:``), literals inside plans (``Filter:``, ``Index Cond:``,
``Recheck Cond:``, ``Join Filter:``, in text and JSON plans), ``CREATE SERVER … OPTIONS (password …)``, ``CREATE
USER MAPPING``, ``ALTER ROLE … PASSWORD``, ``COPY … PROGRAM``, ``SET``, comments, dollar quotes, error lines
quoting their statement (``STATEMENT:``, ``QUERY:``/``CONTEXT:`` of PL/pgSQL; jsonlog's ``internal_query``), a
bound value holding a newline. Then ``pgpulse logs`` runs on the three files as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from pgpulse.demo.embedded import ephemeral_server
from pgpulse.logs import read_logs, summarize

SECRET = "Zq7-hunter2-canary"  # a string secret
NUMBER = "987654321"  # a numeric secret (an id, a card number): numbers are literals too
SETTINGS = {
    "log_min_duration_statement": "0",
    "logging_collector": "on",
    "log_destination": "'stderr,csvlog,jsonlog'",
    "log_directory": "'log'",
    "log_filename": "'postgresql.log'",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "log_rotation_age": "0",
    "log_rotation_size": "0",
}
MARKER = "SELECT 'end of hostile workload' AS marker"
PLAN_RUNS = 3  # executions of the extended-protocol statement with auto_explain on, per plan format


@dataclass
class Logs:
    stderr: Path
    csv: Path
    json: Path

    def all(self) -> list[Path]:
        return [self.stderr, self.csv, self.json]


async def _hostile_workload(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE items (id int PRIMARY KEY, owner text, price numeric)")
        await conn.execute("CREATE INDEX ON items (owner)")
        await conn.execute("INSERT INTO items SELECT g, 'owner' || (g % 50), g FROM generate_series(1, 3000) g")
        await conn.execute("CREATE TABLE owners (name text, secret_col text)")
        await conn.execute("ANALYZE")
        # Statements whose literals are secrets, in places pg_stat_statements' normalization leaves alone.
        await conn.execute("CREATE FOREIGN DATA WRAPPER dummy_fdw")
        await conn.execute(f"CREATE SERVER remote FOREIGN DATA WRAPPER dummy_fdw OPTIONS (password '{SECRET}')")
        await conn.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER remote OPTIONS (password '{SECRET}')")
        await conn.execute("CREATE ROLE bob")
        await conn.execute(f"ALTER ROLE bob PASSWORD '{SECRET}'")
        await conn.execute(f"COPY (SELECT 1) TO PROGRAM 'cat > /dev/null # {SECRET}'")
        await conn.execute(f"SET application_name = '{SECRET}'")
        await conn.execute("RESET application_name")
        await conn.execute(f"SELECT 1 /* {SECRET} */")
        await conn.execute(f"SELECT $q${SECRET}$q$")
        await conn.execute(f"CREATE VIEW v AS SELECT * FROM items WHERE id = {NUMBER}")
        await conn.execute(f"DO $$ BEGIN PERFORM '{SECRET}'; END $$")
        # Bound values: DETAIL: parameters, one of them over two lines.
        await conn.fetchval("SELECT count(*) FROM items WHERE owner = $1", SECRET)
        await conn.fetchval("SELECT count(*) FROM items WHERE owner = $1 OR owner = $2", "x", f"first\n{SECRET}")
        # Errors that quote their statement (STATEMENT:), and PL/pgSQL's QUERY:/CONTEXT: (internal_query).
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(f"SELECT * FROM missing_table WHERE t = '{SECRET}'")
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(f"DO $$ BEGIN PERFORM * FROM missing_table WHERE t = '{SECRET}'; END $$")
        # auto_explain: Query Parameters (PostgreSQL 16+) and literals inside plans, text then JSON.
        await conn.execute("LOAD 'auto_explain'")
        await conn.execute("SET auto_explain.log_min_duration = 0")
        await conn.execute("SET auto_explain.log_analyze = on")
        await conn.execute("SET auto_explain.log_verbose = on")  # Output: lines
        for fmt in ("text", "json"):
            await conn.execute(f"SET auto_explain.log_format = {fmt}")
            shape = "price" if fmt == "text" else "id"  # one shape per plan format, to count each exactly
            for _ in range(PLAN_RUNS):
                await conn.fetchval(f"SELECT max({shape}) FROM items WHERE owner = $1 AND id <> $2", SECRET, 7)
            await conn.execute(f"SELECT * FROM items WHERE owner = '{SECRET}'")  # Filter
            await conn.execute(f"SELECT * FROM items WHERE id = {NUMBER}")  # Index Cond
            await conn.execute("SET enable_indexscan = off")
            await conn.execute("SET enable_seqscan = off")
            await conn.execute(f"SELECT * FROM items WHERE owner = '{SECRET}' AND price > {NUMBER}")  # Recheck
            await conn.execute("RESET enable_indexscan")
            await conn.execute("RESET enable_seqscan")
            await conn.execute(  # Join Filter / Hash Cond around a literal
                f"SELECT * FROM items i JOIN owners o ON o.name = i.owner AND o.secret_col <> '{SECRET}'"
            )
        await conn.execute(MARKER)
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hostile_logs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Logs]:
    with ephemeral_server(settings=SETTINGS) as server:
        await _hostile_workload(server.url())
        written = Logs(*(server.data_dir / "log" / f"postgresql.{ext}" for ext in ("log", "csv", "json")))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the logging collector writes asynchronously
            if all(p.exists() and "end of hostile workload" in p.read_text(errors="replace") for p in written.all()):
                break
            await asyncio.sleep(0.1)
        out = tmp_path_factory.mktemp("hostile-logs")
        copies = Logs(*(out / p.name for p in written.all()))
        for source, copy in zip(written.all(), copies.all(), strict=True):
            copy.write_bytes(source.read_bytes())
        yield copies


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "20000"}  # no wrapping: a secret cut by a line break would go unseen
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "logs", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_the_server_really_logged_every_secret(hostile_logs: Logs) -> None:
    """The attack is real: each place holds the secret in the raw logs, in each of the three formats."""
    for path in hostile_logs.all():
        raw = path.read_text(errors="replace")
        for needle in (
            f"Query Parameters: $1 = '{SECRET}'",
            f"owner = '{SECRET}'::text",
            f"OPTIONS (password '{SECRET}')",
            f"PASSWORD '{SECRET}'",
            f"PROGRAM 'cat > /dev/null # {SECRET}'",
            f"arameters: $1 = '{SECRET}'",  # "Parameters:" since PostgreSQL 16
            f"id = {NUMBER}",
        ):
            assert needle in raw.replace('\\"', '"').replace('""', '"'), (path.name, needle)
        assert '"Query Parameters"' in raw.replace('\\"', '"').replace('""', '"'), path.name  # JSON plans too


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_no_secret_in_any_output_format(hostile_logs: Logs, fmt: str) -> None:
    proc = _run(*map(str, hostile_logs.all()), "--format", fmt, "--top", "0")
    assert proc.returncode == 0, proc.stderr
    shown = proc.stdout + proc.stderr
    assert SECRET not in shown
    assert NUMBER not in shown
    assert "hunter2" not in shown  # not even part of it
    assert "Traceback" not in shown
    # and the report is a real one: the shapes and their plans are there, redacted
    assert "owner = $1" in shown
    if fmt != "table":
        # which scan depends on the statistics autovacuum gathered meanwhile; that a plan of items is there does not
        assert re.search(
            r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)( on items| using \w+ on items|\\?\")", shown
        )
        assert "Filter" in shown and "'***'" in shown  # the plan's literal, masked in place


@pytest.mark.parametrize("which", ["stderr", "csv", "json"])
def test_auto_explain_parameters_are_neither_shown_nor_counted_twice(hostile_logs: Logs, which: str) -> None:
    """Each auto_explain plan is followed by its statement's duration line: one execution, not two, once the
    Query Parameters line no longer sticks to the plan's query text."""
    stats = summarize(read_logs([getattr(hostile_logs, which)]).entries)
    for column in ("price", "id"):  # text-format plans, then JSON-format plans
        matching = [s for s in stats if s.query.startswith(f"SELECT max({column}) FROM items WHERE owner = $1")]
        assert len(matching) == 1, [s.query for s in stats]
        assert matching[0].count == PLAN_RUNS
        assert matching[0].plan is not None and "Aggregate" in matching[0].plan
    dumped = json.dumps([s.as_dict() for s in stats])
    assert SECRET not in dumped and NUMBER not in dumped and "Query Parameters" not in dumped


@pytest.mark.parametrize("which", ["stderr", "csv", "json"])
def test_plans_keep_their_shape_but_lose_their_literals(hostile_logs: Logs, which: str) -> None:
    stats = summarize(read_logs([getattr(hostile_logs, which)]).entries)
    plans = "\n".join(s.plan for s in stats if s.plan)
    assert "Index Cond" in plans and "Recheck Cond" in plans and "Filter" in plans
    assert "id = $?)" in plans  # Index Cond: (items.id = 987654321)
    assert "owner = '***'::text" in plans
