"""Without HypoPG (the embedded PostgreSQL 18): verification by a rolled-back build when allowed, clear errors
otherwise, and one-line errors for every kind of bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

SEED = "SELECT * FROM events WHERE account_id = $1 AND kind = 'buy' ORDER BY created_at DESC LIMIT 10"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plain_db(make_database, advisor_schema: str) -> str:  # type: ignore[no-untyped-def]
    url = await make_database("advise")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(advisor_schema.replace("CREATE EXTENSION IF NOT EXISTS hypopg;", ""))
        await conn.execute("DROP EXTENSION pg_stat_statements")
    finally:
        await conn.close()
    return str(url)


async def _indexes(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes ORDER BY 1")]
    finally:
        await conn.close()


async def _hypopg_available(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT true FROM pg_available_extensions WHERE name = 'hypopg'"))
    finally:
        await conn.close()


def test_without_hypopg_it_says_what_to_enable(plain_db, advise) -> None:  # type: ignore[no-untyped-def]
    code, _, err = advise(plain_db, "-q", SEED)
    assert code == 2 and err.count("\n") == 1 and "--allow-build" in err
    # The embedded 18 has no HypoPG: install it. A server that has it (e.g. Debian's 15 given as
    # PGPULSE_TEST_DATABASE_URL) only lacks the extension in this database: enable it.
    if asyncio.run(_hypopg_available(plain_db)):
        assert "HypoPG is installed on the server but not enabled in this database" in err, err
        assert "CREATE EXTENSION hypopg" in err, err
    else:
        assert "install HypoPG" in err, err


def test_allow_build_verifies_by_a_rolled_back_build_and_measures(plain_db, advise) -> None:  # type: ignore[no-untyped-def]
    before = asyncio.run(_indexes(plain_db))
    code, out, err = advise(plain_db, "-q", SEED, "--allow-build", "--measure", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["method"] == "build"
    rec = doc["recommendations"][0]
    assert [c["name"] for c in rec["columns"]] == ["account_id", "kind", "created_at"]
    assert rec["size_bytes"] > 0
    query = rec["queries"][0]
    assert query["measured_after_ms"] < query["measured_before_ms"]
    assert asyncio.run(_indexes(plain_db)) == before  # every trial build was rolled back


def test_parameter_without_statistics_costs_the_generic_plan(plain_db, advise) -> None:  # type: ignore[no-untyped-def]
    query = "SELECT * FROM events WHERE note = $1 || 'x'"  # $1 is not compared with a column: no pg_stats value
    code, out, err = advise(plain_db, "-q", query, "--allow-build", "-f", "json", "-v")
    assert code == 0, err
    assert "costing a generic plan" in err
    doc = json.loads(out)
    assert [c["name"] for c in doc["recommendations"][0]["columns"]] == ["note"]


def test_missing_pg_stat_statements_is_one_line_with_the_alternative(plain_db, advise) -> None:  # type: ignore[no-untyped-def]
    code, _, err = advise(plain_db, "--allow-build")
    assert code == 2 and "pg_stat_statements is not enabled" in err and "--query" in err


def test_conflicting_sources_and_missing_files(plain_db, advise, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = advise(plain_db, "-q", SEED, "--file", "x.sql")
    assert code == 2 and "one workload source" in err
    code, _, err = advise(plain_db, "--log", str(tmp_path / "nope.log"))
    assert code == 2 and "no such log file" in err
    code, _, err = advise(plain_db, "--file", str(tmp_path / "nope.sql"))
    assert code == 2 and "cannot read" in err


def test_queries_from_a_file_and_from_a_log(plain_db, advise, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "queries.sql"
    script.write_text(f"{SEED};\nSELEC broken;\nSELECT * FROM events WHERE note = 'semi;colon'\n")
    code, out, _ = advise(plain_db, "--file", str(script), "--allow-build", "-f", "json")
    assert code == 0
    assert [q["status"] for q in json.loads(out)["queries"]] == ["improved", "skipped", "improved"]
    log = tmp_path / "postgresql.log"
    log.write_text(
        "2026-11-24 10:00:00.123 UTC [42] app@shop LOG:  duration: 812.345 ms  execute s1: "
        "SELECT * FROM events WHERE note = $1\n"
        "2026-11-24 10:00:00.123 UTC [42] app@shop DETAIL:  parameters: $1 = 'note 5'\n"
    )
    code, out, _ = advise(plain_db, "--log", str(log), "--allow-build", "-f", "json")
    assert code == 0
    assert [c["name"] for c in json.loads(out)["recommendations"][0]["columns"]] == ["note"]


@pytest.mark.parametrize("kind", ["unreachable", "wrong-password", "not-postgres", "bad-url"])
def test_connection_problems_exit_2_with_one_line(plain_db, kind: str) -> None:  # type: ignore[no-untyped-def]
    listener = None
    if kind == "unreachable":
        url = "postgresql://u:p@127.0.0.1:1/db"
    elif kind == "wrong-password":
        from sqlalchemy.engine import make_url

        url = make_url(plain_db).set(password="wrong").render_as_string(hide_password=False)
    elif kind == "not-postgres":  # an HTTP server answering on the port
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer_http(server: socket.socket = listener) -> None:
            with contextlib.suppress(OSError):
                peer, _ = server.accept()
                peer.recv(1024)
                peer.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                peer.close()

        threading.Thread(target=answer_http, daemon=True).start()
        url = f"postgresql://u:p@127.0.0.1:{listener.getsockname()[1]}/db"
    else:
        url = "mysql://u:p@localhost/db"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pgpulse.cli", "advise", url, "-q", SEED],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if listener is not None:
            listener.close()
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "wrong" not in proc.stderr.replace("wrong password", "")  # the password itself is never shown
