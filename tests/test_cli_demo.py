"""``pgpulse demo`` end to end in a subprocess, as a user runs it: a real database, timings printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import asyncpg


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=full_env,
    )


async def test_demo_no_serve_adopts_an_empty_database_then_migrates_and_seeds_it(make_database) -> None:  # type: ignore[no-untyped-def]
    url = await make_database("demo")  # exists and is empty: used only with --adopt-empty (tests/safety has the rest)
    result = run_cli("demo", "--no-serve", "--adopt-empty", "--users", "30", "--posts", "600", "--database-url", url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "migrated to head" in out and "seeded 31 users, 650 posts" in out and "ready in" in out
    assert "planted one instance of each problem" in out
    password = url.split(":")[2].split("@")[0]
    assert password not in out + result.stderr, "the DSN password is never printed"
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM posts") == 650
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0002"
    finally:
        await conn.close()


def test_demo_refuses_a_busy_port_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("demo", "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} is in use" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_demo_rejects_a_non_postgresql_url() -> None:
    result = run_cli("demo", "--no-serve", "--database-url", "mysql://u:hunter2@localhost/db")
    assert result.returncode == 2
    assert "not PostgreSQL" in result.stderr and "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
