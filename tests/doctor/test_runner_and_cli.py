"""The doctor as users and CI run it: formats, exit codes, read-only sessions, missing privileges and
every way of failing to connect — one line on stderr, exit 2, never a traceback or a password."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pgpulse.demo.embedded import free_port
from pgpulse.doctor.checks import ALL
from pgpulse.doctor.report import render_json, render_markdown
from pgpulse.doctor.runner import connect, run_checks


def doctor(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPULSE_DATABASE_URL")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "doctor", *args], capture_output=True, text=True, timeout=120, env=env
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str, secret: str = "") -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    if secret:
        assert secret not in result.stderr + result.stdout


async def test_the_doctor_session_cannot_write(db: str) -> None:
    conn, settings = await connect(db)
    try:
        assert settings["statement_timeout"][0] == "0", "the server's value, read before the doctor set its own"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("CREATE TABLE should_not_exist (id int)")
        assert await conn.fetchval("SHOW statement_timeout") == "10s"
        assert await conn.fetchval("SHOW lock_timeout") == "1s"
    finally:
        await conn.close()


async def test_a_role_without_privileges_gets_skips_with_notes_not_a_crash(db: str, execute: Any) -> None:
    await execute(
        db,
        "CREATE EXTENSION IF NOT EXISTS pgstattuple",
        "CREATE TABLE big (id int PRIMARY KEY, pad text)",
        "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
        "DROP ROLE IF EXISTS doctor_nopriv",
        "CREATE ROLE doctor_nopriv LOGIN PASSWORD 'np-secret'",
    )
    url = make_url(db).set(username="doctor_nopriv", password="np-secret").render_as_string(hide_password=False)
    report = await run_checks(url)
    skipped = {r.name: r.skipped for r in report.results if r.skipped}
    assert "bloat" in skipped and "insufficient privilege" in skipped["bloat"] and "pg_monitor" in skipped["bloat"]
    assert len(report.results) == len(ALL) and len(skipped) < len(ALL) // 2, "the other checks still ran"


async def test_json_markdown_table_and_exit_codes(db: str, execute: Any) -> None:
    await execute(
        db, "CREATE TABLE t (id int PRIMARY KEY, a int)", "CREATE INDEX t_a1 ON t (a)", "CREATE INDEX t_a2 ON t (a)"
    )
    result = doctor(db, "--format", "json")
    assert result.returncode == 1, result.stderr  # warnings exist (duplicate index, settings)
    report = json.loads(result.stdout)
    assert make_url(db).password not in result.stdout
    assert report["database"].startswith("postgresql://postgres:***@")
    assert {c["name"] for c in report["checks"]} >= {"unused_indexes", "duplicate_indexes", "settings", "connections"}
    assert any(
        f["check"] == "duplicate_indexes" and f["fix"] == "DROP INDEX CONCURRENTLY t_a2;" for f in report["findings"]
    )
    assert report["summary"]["warning"] >= 1
    severities = [f["severity"] for f in report["findings"]]
    order = {"critical": 0, "warning": 1, "info": 2}
    assert severities == sorted(severities, key=order.__getitem__), "grouped by severity, worst first"
    critical_only = doctor(db, "--format", "json", "--fail-on", "critical")
    assert critical_only.returncode == (1 if report["summary"]["critical"] else 0)
    markdown = doctor(db, "--format", "markdown")
    assert markdown.stdout.startswith("# pgpulse doctor: postgresql://postgres:***@")
    assert "## warning" in markdown.stdout and "```sql\nDROP INDEX CONCURRENTLY t_a2;\n```" in markdown.stdout
    table = doctor(db)
    assert "duplicate_indexes" in table.stdout and table.returncode == 1


def test_unreachable_host_is_one_line_exit_2() -> None:
    result = doctor(f"postgresql://app:s3cr3t-pw@127.0.0.1:{free_port()}/db")
    assert_one_line_error(result, "cannot connect", "***", secret="s3cr3t-pw")


def test_wrong_password_is_one_line_exit_2(pg_url: str) -> None:
    if os.environ.get("PGPULSE_TEST_DATABASE_URL"):
        pytest.skip("needs the embedded server's password authentication")
    wrong = make_url(pg_url).set(password="not-the-password").render_as_string(hide_password=False)
    assert_one_line_error(doctor(wrong), "authentication failed", secret="not-the-password")


def test_a_port_that_is_not_postgresql_is_one_line_exit_2() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer_http() -> None:
            for _ in range(3):
                try:
                    client, _ = server.accept()
                except OSError:
                    return
                with client:
                    client.recv(1024)
                    client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=answer_http, daemon=True).start()
        result = doctor(f"postgresql://u:pw-not-shown@127.0.0.1:{port}/db")
    assert_one_line_error(result, secret="pw-not-shown")


def test_bad_arguments_are_one_line_exit_2() -> None:
    assert_one_line_error(doctor("mysql://u:p@h/d"), "not PostgreSQL")
    assert_one_line_error(doctor("postgresql://u@127.0.0.1:1/d", "--app-workers", "4"), "--pool-size")
    assert doctor("postgresql://u@h/d", "--format", "yaml").returncode == 2


async def test_fixes_are_printed_whole_at_any_terminal_width(db: str, execute: Any) -> None:
    long_name = "ix_session_tokens_user_id_last_seen_created_at_and_more_columns"  # 63 characters
    await execute(
        db,
        "CREATE TABLE session_tokens (id int PRIMARY KEY, user_id int)",
        f"CREATE INDEX {long_name} ON session_tokens (user_id)",
        "CREATE INDEX aaa_first ON session_tokens (user_id)",
    )
    statement = f"DROP INDEX CONCURRENTLY {long_name};"
    table = doctor(db, columns=40)
    assert statement in table.stdout.splitlines(), "the fix on a line of its own, not cut at 40 columns"
    assert "…" not in table.stdout.split("fix:")[1].splitlines()[1]
    report = await run_checks(db)  # the other formats do not depend on the terminal: rendered in-process
    assert f"```sql\n{statement}\n```" in render_markdown(report, "db")
    assert statement in [f["fix"] for f in json.loads(render_json(report, "db"))["findings"]]
