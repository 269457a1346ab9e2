"""Plant one instance of each problem the doctor finds, so ``pgpulse doctor`` on the demo shows them all.

Only ever runs against the demo database (``pgpulse demo`` calls it): it refuses a database without the demo
marker (``pgpulse.demo.database``) before writing anything. It drops and recreates its own
tables, so it is safe to run again. What it plants, and which check should fire:

* ``audit_events``: 200,000 rows queried by ``account_id`` ordered by ``created_at`` with no index for
  it → missing-index signal, top queries (and ``pgpulse advise`` proposes the composite);
  ``ix_audit_events_payload`` never used → unused index; ``ix_audit_events_kind`` is a left prefix of
  ``ix_audit_events_kind_created`` → redundant index.
* ``session_tokens``: autovacuum disabled, every row updated twice after the last ANALYZE → dead tuples,
  bloat, stale statistics; a failed ``CREATE UNIQUE INDEX CONCURRENTLY`` on it → invalid index.
* ``legacy_imports``: no primary key; ``order_counters.id`` is an ``integer`` fed by a bigint sequence at
  95 % of 2^31 → sequences near overflow; ``token_events.token_id`` references ``session_tokens`` with no
  index, and session_tokens sees deletes → foreign key without an index; a CHECK added ``NOT VALID`` on
  session_tokens → invalid constraint; ``login_attempts`` keeps 1 row in 5 after a purge and a VACUUM →
  its primary key's leaf pages are mostly empty → index bloat.
* the slow query runs ``SLOW_QUERY_CALLS`` (100) times: PgHero's minimum for a slow query, so top queries
  warns about it (a handful of calls would be a one-off, reported as info only).
* the demo database gets ``CONNECTION LIMIT 40``: the banner's ``--app-workers 4 --pool-size 10`` pools
  (with SQLAlchemy's default max_overflow 10) can open 80 → the connections check's pool finding. CitizenApp
  itself (one worker, pool 10 + 5) stays well under it.
* CitizenApp's own indexes get a few real scans (the seed query, a comments load), so that they are not
  reported as unused right after seeding.
"""

from __future__ import annotations

import contextlib

import asyncpg

from pgpulse.db.urls import libpq_url
from pgpulse.demo.database import require_marker
from pgpulse.sql import quote_ident

AUDIT_ROWS = 200_000
TOKENS = 50_000

SCHEMA = f"""
DROP TABLE IF EXISTS audit_events, session_tokens, legacy_imports, order_counters, token_events,
    login_attempts CASCADE;
DROP SEQUENCE IF EXISTS order_counters_id_seq;
CREATE TABLE audit_events (
    id bigserial PRIMARY KEY,
    account_id integer NOT NULL,
    kind text NOT NULL,
    payload text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO audit_events (account_id, kind, payload, created_at)
SELECT (g % 5000) + 1,
       (ARRAY['login', 'logout', 'update', 'export'])[1 + g % 4],
       md5(g::text),
       timestamptz '2026-01-01' + (g || ' seconds')::interval
FROM generate_series(1, {AUDIT_ROWS}) AS g;
CREATE INDEX ix_audit_events_payload ON audit_events (payload);
CREATE INDEX ix_audit_events_kind ON audit_events (kind);
CREATE INDEX ix_audit_events_kind_created ON audit_events (kind, created_at);

CREATE TABLE session_tokens (
    id bigserial PRIMARY KEY,
    user_id integer NOT NULL,
    token text NOT NULL,
    last_seen timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_enabled = false);
INSERT INTO session_tokens (user_id, token)
SELECT g % 1000, md5(g::text) FROM generate_series(1, {TOKENS}) AS g;
"""
MORE = """
CREATE TABLE legacy_imports (source text, payload text);
INSERT INTO legacy_imports SELECT 'csv', md5(g::text) FROM generate_series(1, 100) AS g;
CREATE SEQUENCE order_counters_id_seq;
CREATE TABLE order_counters (id integer PRIMARY KEY DEFAULT nextval('order_counters_id_seq'), label text);
SELECT setval('order_counters_id_seq', 2040109465);
CREATE TABLE token_events (id bigserial PRIMARY KEY, token_id bigint NOT NULL REFERENCES session_tokens (id),
                           kind text NOT NULL);
INSERT INTO token_events (token_id, kind) SELECT 1000 + g, 'refresh' FROM generate_series(1, 500) AS g;
DELETE FROM session_tokens WHERE id <= 100;
ALTER TABLE session_tokens ADD CONSTRAINT session_tokens_user_id_positive CHECK (user_id > 0) NOT VALID;
CREATE TABLE login_attempts (id bigint PRIMARY KEY, user_id integer NOT NULL, ok boolean NOT NULL);
INSERT INTO login_attempts SELECT g, g % 1000, g % 7 <> 0 FROM generate_series(1, 200000) AS g;
DELETE FROM login_attempts WHERE id % 5 <> 0;
"""
CHURN = """
UPDATE session_tokens SET last_seen = last_seen + interval '1 minute';
UPDATE session_tokens SET token = md5(token);
"""

SLOW_QUERY_CALLS = 100
DEMO_CONNECTION_LIMIT = 40
SLOW_QUERY = "SELECT id, kind, created_at FROM audit_events WHERE account_id = $1 ORDER BY created_at DESC LIMIT 20"


async def plant_problems(url: str) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await require_marker(conn)  # it drops tables: never on a database the demo did not create
        for extension in ("pg_stat_statements", "pgstattuple"):
            # not shipped or not preloaded on this server: the doctor says how to enable it
            with contextlib.suppress(asyncpg.PostgresError):
                await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
        await conn.execute(SCHEMA)
        # Counters reach pg_stat only when a backend flushes them; flush before ANALYZE so that the load
        # itself does not count as "modified since analyze".
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("ANALYZE audit_events, session_tokens")
        await conn.execute(CHURN)
        await conn.execute(MORE)
        await conn.execute("VACUUM ANALYZE login_attempts")
        # user_id repeats, so the unique build fails and leaves an INVALID index behind — the real-world
        # way invalid indexes appear.
        with contextlib.suppress(asyncpg.UniqueViolationError):
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_session_tokens_user ON session_tokens (user_id)")
        if await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"):
            await conn.execute("SELECT pg_stat_statements_reset()")  # the workload, not the set-up
        for call in range(SLOW_QUERY_CALLS):
            await conn.fetch(SLOW_QUERY, call % 5000 + 1)
        if await conn.fetchval("SELECT to_regclass('public.posts') IS NOT NULL"):
            await conn.execute("SET enable_seqscan = off")
            for user_id in range(1, 6):
                await conn.fetch(
                    "SELECT id FROM posts WHERE user_id = $1 AND status = 'published' "
                    "ORDER BY created_at DESC LIMIT 10",
                    user_id,
                )
                await conn.fetch("SELECT text FROM comments WHERE post_id = $1 ORDER BY id", user_id)
            await conn.execute("RESET enable_seqscan")
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE {quote_ident(database)} CONNECTION LIMIT {DEMO_CONNECTION_LIMIT}")
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()
