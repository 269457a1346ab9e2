"""``pgpulse demo`` pointed at someone's real database must not touch it.

The attack: DATABASE_URL names an application database whose tables happen to share the demo's names
(``audit_events``, ``session_tokens``, ``users``, ``posts``, ``comments``). The old demo dropped and truncated
them. Now every path that writes (demo with or without --reseed/--adopt-empty, serve, the planted problems)
is refused with one line before anything is written: same relations, same OIDs, same relfilenodes (a
TRUNCATE changes them), same rows, no new database on the server. The positive side: a database the demo
creates is marked, its data persist across runs, and only --reseed replaces them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pgpulse.demo.database import MARKER_TABLE
from pgpulse.demo.embedded import free_port
from pgpulse.demo.problems import plant_problems
from pgpulse.errors import DemoDatabaseRefused

# The victim's own Alembic history uses revision "0001" too (a common naming scheme): the old demo then saw
# "already at head", skipped every CREATE TABLE, and went straight to TRUNCATE and DROP TABLE.
VICTIM_SCHEMA = """
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0001');
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE posts (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users, title text NOT NULL);
CREATE TABLE comments (id bigserial PRIMARY KEY, post_id bigint NOT NULL REFERENCES posts, text text NOT NULL);
CREATE TABLE audit_events (id bigserial PRIMARY KEY, account_id integer NOT NULL, kind text NOT NULL);
CREATE TABLE session_tokens (id bigserial PRIMARY KEY, user_id bigint NOT NULL, token text NOT NULL);
CREATE INDEX posts_user_idx ON posts (user_id);
CREATE INDEX audit_account_idx ON audit_events (account_id, kind);
INSERT INTO users (email, name) SELECT 'customer' || g || '@shop.example', 'Customer ' || g
  FROM generate_series(1, 40) g;
INSERT INTO posts (user_id, title) SELECT 1 + g % 40, 'order ' || g FROM generate_series(1, 300) g;
INSERT INTO comments (post_id, text) SELECT 1 + g % 300, 'note ' || g FROM generate_series(1, 500) g;
INSERT INTO audit_events (account_id, kind) SELECT g % 7, 'login' FROM generate_series(1, 250) g;
INSERT INTO session_tokens (user_id, token) SELECT g, md5(g::text) FROM generate_series(1, 60) g;
"""
TABLES = ("users", "posts", "comments", "audit_events", "session_tokens")  # each has an id column
RELATIONS_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind::text, c.relfilenode::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY c.oid
"""


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPULSE_DATABASE_URL")}
    env["DATABASE_URL"] = url  # the way the victim had it: in the environment, not on the command line
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", *args], capture_output=True, text=True, timeout=180, env=env
    )


async def snapshot(url: str, maintenance_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        state: dict[str, Any] = {"relations": [tuple(r) for r in await conn.fetch(RELATIONS_SQL)]}
        for table in TABLES:
            state[table] = tuple(
                await conn.fetchrow(f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {table} t")
            )
    finally:
        await conn.close()
    conn = await asyncpg.connect(maintenance_url)
    try:
        state["databases"] = sorted(r[0] for r in await conn.fetch("SELECT datname FROM pg_database"))
    finally:
        await conn.close()
    return state


@pytest.fixture
async def victim(make_database: Any) -> str:
    url: str = await make_database("victim")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(VICTIM_SCHEMA)
    finally:
        await conn.close()
    return url


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-800:], result.stderr[-800:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


async def test_demo_and_serve_refuse_an_existing_database_without_the_marker(victim: str, pg_url: str) -> None:
    before = await snapshot(victim, pg_url)
    assert before["users"][0] == 40 and before["comments"][0] == 500  # the victim is what the test says it is
    password = make_url(victim).password
    assert password

    for flags in ((), ("--reseed",), ("--adopt-empty",)):
        result = run_cli("demo", "--no-serve", "--users", "5", "--posts", "50", *flags, url=victim)
        line = assert_refused(result, "leaves it untouched")
        assert ("not empty" in line) == ("--adopt-empty" in flags), line
        # the line says how to proceed: a database name that does not exist yet, or (unless --adopt-empty was
        # just refused) an empty database with --adopt-empty
        assert "point DATABASE_URL at a database name that does not exist yet" in line, line
        assert ("pass --adopt-empty" in line) == ("--adopt-empty" not in flags), line
        assert password not in result.stdout + result.stderr
        assert await snapshot(victim, pg_url) == before, f"demo {flags} changed the victim database"

    result = run_cli("serve", "--port", str(free_port()), url=victim)
    assert_refused(result, "no pgpulse demo marker")
    assert await snapshot(victim, pg_url) == before

    with pytest.raises(DemoDatabaseRefused):
        await plant_problems(victim)
    assert await snapshot(victim, pg_url) == before


async def test_a_created_database_is_marked_kept_between_runs_and_reseeded_only_when_asked(pg_url: str) -> None:
    server_only = make_url(pg_url)._replace(database=None).render_as_string(hide_password=False)
    conn = await asyncpg.connect(pg_url)
    await conn.execute("DROP DATABASE IF EXISTS pgpulse_demo WITH (FORCE)")
    try:
        first = run_cli("demo", "--no-serve", "--users", "8", "--posts", "120", url=server_only)
        assert first.returncode == 0, first.stderr
        assert "created the demo database pgpulse_demo" in first.stdout
        assert "seeded 9 users, 170 posts" in first.stdout
        demo_url = make_url(pg_url).set(database="pgpulse_demo").render_as_string(hide_password=False)
        demo = await asyncpg.connect(demo_url)
        try:
            assert await demo.fetchval(f"SELECT count(*) FROM {MARKER_TABLE} WHERE seeded_at IS NOT NULL") == 1
            # a user's own edit to the demo data: a second run must keep it
            await demo.execute("INSERT INTO users (name, email) VALUES ('Kept', 'kept@example.org')")

            second = run_cli("demo", "--no-serve", "--users", "3", "--posts", "10", url=server_only)
            assert second.returncode == 0, second.stderr
            assert "opened the demo database pgpulse_demo" in second.stdout and "kept the demo data" in second.stdout
            assert "seeded" not in second.stdout.replace("kept the demo data seeded", "")
            assert await demo.fetchval("SELECT count(*) FROM users") == 10
            assert await demo.fetchval("SELECT count(*) FROM posts") == 170

            third = run_cli("demo", "--no-serve", "--reseed", "--users", "3", "--posts", "10", url=server_only)
            assert third.returncode == 0, third.stderr
            assert "seeded 4 users, 60 posts" in third.stdout
            assert await demo.fetchval("SELECT count(*) FROM users WHERE email = 'kept@example.org'") == 0
            assert await demo.fetchval("SELECT count(*) FROM posts") == 60
        finally:
            await demo.close()
    finally:
        await conn.execute("DROP DATABASE IF EXISTS pgpulse_demo WITH (FORCE)")
        await conn.close()


async def test_a_role_that_may_not_create_databases_is_told_what_to_do(pg_url: str) -> None:
    admin = await asyncpg.connect(pg_url)
    role, password = "demo_no_createdb", "Rl-9f3kq-pw"
    await admin.execute(f"DROP ROLE IF EXISTS {role}")
    await admin.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}'")
    try:
        before = sorted(r[0] for r in await admin.fetch("SELECT datname FROM pg_database"))
        url = make_url(pg_url).set(username=role, password=password, database="pgpulse_demo_not_allowed")
        result = run_cli("demo", "--no-serve", url=url.render_as_string(hide_password=False))
        line = assert_refused(result, "may not create it", "--adopt-empty")
        assert password not in result.stdout + result.stderr, line
        assert sorted(r[0] for r in await admin.fetch("SELECT datname FROM pg_database")) == before
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
