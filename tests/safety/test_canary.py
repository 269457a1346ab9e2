"""The canary: every read-only pgpulse command runs against a watched database, and nothing in it changes.

Watched: every relation's OID, kind and relfilenode (a TRUNCATE, VACUUM FULL or REINDEX changes it), every
table's row count and content hash, the write counters of ``pg_stat_user_tables``, every sequence's state,
the databases on the server, and every DDL statement — an event trigger on ``ddl_command_start`` and
``sql_drop`` writes an audit row *and* calls ``nextval`` on a counter sequence, because a rolled-back
``CREATE INDEX`` (the "verify by building" trick) would roll its audit row back with it, but not a sequence
step. Afterwards no backend of pgpulse is left and no lock is held.

The commands run as real CLI subprocesses, as a user runs them: ``doctor`` in every format, ``advise`` on
pg_stat_statements, on ``--query`` and on ``--log`` (no ``--apply``; with HypoPG when Debian's PostgreSQL 15
has it, else on the embedded server, where advise says HypoPG is missing), and ``logs``. The workload is
benign and realistic: a shop's queries, some fast, some missing an index.

The canary must be able to fail: the test finally makes a write and a rolled-back DDL of its own and checks
that the comparison sees both.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import EmbeddedPostgres, ephemeral_server
from pgpulse.sql import redact_text

DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")
HYPOPG = Path("/usr/lib/postgresql/15/lib/hypopg.so")
SERVER_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "log_min_duration_statement": "0",  # the log that `logs` and `advise --log` read
    "logging_collector": "on",
    "log_directory": "'log'",
    "log_filename": "'postgresql.log'",
    "log_rotation_age": "0",
    "log_rotation_size": "0",
    "autovacuum": "off",  # nothing but pgpulse may touch the watched tables while we watch
    "lc_messages": "'C'",
}

SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, region text NOT NULL);
CREATE TABLE shop.orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers,
    status text NOT NULL,
    total numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE shop.order_items (order_id bigint NOT NULL REFERENCES shop.orders, sku text NOT NULL, qty int NOT NULL,
                               PRIMARY KEY (order_id, sku));
CREATE TABLE public."Audit Log" (id serial PRIMARY KEY, note text);
CREATE SEQUENCE shop.invoice_numbers START 1000;
CREATE INDEX orders_status_partial ON shop.orders (created_at) WHERE status = 'open';
CREATE MATERIALIZED VIEW shop.daily_totals AS
    SELECT date_trunc('day', created_at) AS day, sum(total) AS total FROM shop.orders GROUP BY 1;
INSERT INTO shop.customers (email, region)
    SELECT 'c' || g || '@shop.example', (ARRAY['eu', 'us', 'apac'])[1 + g % 3] FROM generate_series(1, 2000) g;
INSERT INTO shop.orders (customer_id, status, total, created_at)
    SELECT 1 + (hashint4(g) & 2147483647) % 2000, (ARRAY['open', 'paid', 'shipped', 'paid'])[1 + g % 4],
           (g % 500) + 0.99, timestamptz '2026-01-01' + g * interval '5 minutes'
    FROM generate_series(1, 60000) g;
INSERT INTO shop.order_items SELECT o.id, 'sku-' || k, 1 + k FROM shop.orders o, generate_series(1, 2) k;
INSERT INTO public."Audit Log" (note) SELECT 'boot ' || g FROM generate_series(1, 10) g;
SELECT nextval('shop.invoice_numbers');
REFRESH MATERIALIZED VIEW shop.daily_totals;
ANALYZE;
"""

# The event trigger: created as superuser; every DDL anyone runs leaves a row and a sequence step.
CANARY = """
CREATE SCHEMA canary;
CREATE TABLE canary.ddl (at timestamptz DEFAULT clock_timestamp(), event text, tag text, object text);
CREATE SEQUENCE canary.ddl_count;
CREATE FUNCTION canary.on_ddl_start() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('canary.ddl_count');
    INSERT INTO canary.ddl (event, tag) VALUES (TG_EVENT, TG_TAG);
END $$;
CREATE FUNCTION canary.on_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE dropped record;
BEGIN
    PERFORM nextval('canary.ddl_count');
    FOR dropped IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
        INSERT INTO canary.ddl (event, tag, object) VALUES (TG_EVENT, TG_TAG, dropped.object_identity);
    END LOOP;
END $$;
CREATE EVENT TRIGGER canary_ddl_start ON ddl_command_start EXECUTE FUNCTION canary.on_ddl_start();
CREATE EVENT TRIGGER canary_sql_drop ON sql_drop EXECUTE FUNCTION canary.on_drop();
"""

# A shop's day: lookups by key (indexed), a customer's recent orders (no index on customer_id: the advisor's
# case), a report over the partial index. Run on the extended protocol, so pg_stat_statements and the log see
# them the way an application sends them.
WORKLOAD = [
    ("SELECT email, region FROM shop.customers WHERE id = $1", lambda i: (1 + i % 2000,)),
    ("SELECT id, total FROM shop.orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10", lambda i: (i,)),
    ("SELECT count(*) FROM shop.orders WHERE status = 'open' AND created_at > $1", None),
    ("SELECT sku, qty FROM shop.order_items WHERE order_id = $1", lambda i: (1 + i * 7,)),
    ('SELECT note FROM public."Audit Log" WHERE id = $1', lambda i: (1 + i % 10,)),
]

RELATIONS_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind::text, c.relfilenode::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY c.oid
"""
TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""
WRITE_COUNTERS_SQL = """
SELECT relid::bigint, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd
FROM pg_stat_user_tables ORDER BY relid
"""
SEQUENCES_SQL = "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1"


@dataclass
class Canary:
    server: EmbeddedPostgres
    url: str
    log: Path
    hypopg: bool
    store: str  # a history store: a database of its own on the same server, created before we watch


async def _setup(server: EmbeddedPostgres, hypopg: bool) -> str:
    url = await create_database(server.url(), "canary_shop")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
        await conn.execute("CREATE EXTENSION pg_stat_statements")
        if hypopg:
            await conn.execute("CREATE EXTENSION hypopg")
        await conn.execute(CANARY)  # last: the set-up itself is not what we watch
        await conn.execute("SELECT pg_stat_statements_reset()")
        for sql, args in WORKLOAD:
            for i in range(30):
                params = args(i) if args else (datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=i),)
                await conn.fetch(sql, *params)
    finally:
        await conn.close()
    # Our own set-up's write counters reach pg_stat when its backend exits: wait for them, so that a late
    # flush is not mistaken for a write by pgpulse.
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + 10
        sql = "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'order_items'"
        while (await conn.fetchval(sql)) != 120_000:
            assert time.monotonic() < deadline, "the set-up's statistics never arrived"
            await asyncio.sleep(0.05)
            await conn.execute("SELECT pg_stat_clear_snapshot()")
    finally:
        await conn.close()
    return url


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    hypopg = HYPOPG.exists()
    bins = DEBIAN_PG15 if hypopg else None  # else the embedded PostgreSQL 18: advise says HypoPG is missing
    with ephemeral_server(settings=SERVER_SETTINGS, bins=bins) as server:
        url = asyncio.run(_setup(server, hypopg))
        store = asyncio.run(create_database(server.url(), "canary_history_store"))
        log = server.data_dir / "log" / "postgresql.log"
        yield Canary(server=server, url=url, log=log, hypopg=hypopg, store=store)


async def snapshot(url: str, maintenance_url: str) -> dict[str, Any]:
    """Everything a write, a DDL or a lock would change (read by the test's own, read-only session)."""
    conn = await asyncpg.connect(url, server_settings={"default_transaction_read_only": "on"})
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        state: dict[str, Any] = {"relations": [tuple(r) for r in await conn.fetch(RELATIONS_SQL)]}
        for (table,) in await conn.fetch(TABLES_SQL):
            digest = "md5(string_agg(t::text, ',' ORDER BY t::text))"
            state[table] = tuple(await conn.fetchrow(f"SELECT count(*), {digest} FROM {table} t"))
        state["write_counters"] = [tuple(r) for r in await conn.fetch(WRITE_COUNTERS_SQL)]
        for (sequence,) in await conn.fetch(SEQUENCES_SQL):
            state[sequence] = tuple(await conn.fetchrow(f"SELECT last_value, is_called FROM {sequence}"))
        state["event_triggers"] = [
            tuple(r) for r in await conn.fetch("SELECT evtname, evtenabled FROM pg_event_trigger")
        ]
        state["extensions"] = sorted(r[0] for r in await conn.fetch("SELECT extname FROM pg_extension"))
    finally:
        await conn.close()
    conn = await asyncpg.connect(maintenance_url)
    try:
        state["databases"] = sorted(r[0] for r in await conn.fetch("SELECT datname FROM pg_database"))
    finally:
        await conn.close()
    return state


async def _leftovers(url: str, timeout: float = 10.0) -> tuple[list[Any], list[Any]]:
    """pgpulse backends still connected, and locks held by anyone else, once the commands have exited."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            backends = await conn.fetch(
                "SELECT pid, application_name, state FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND application_name LIKE 'pgpulse%'"
            )
            locks = await conn.fetch(
                "SELECT l.pid, l.locktype, l.mode, l.relation::regclass::text FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.pid <> pg_backend_pid() AND a.backend_type = "
                "'client backend'"
            )
            if (not backends and not locks) or time.monotonic() > deadline:
                return [tuple(b) for b in backends], [tuple(lk) for lk in locks]
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPULSE_DATABASE_URL")}
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )
    shown = redact_text(" ".join(args))[:90]  # the URLs carry the password
    print(f"pgpulse {shown}: exit {result.returncode} in {time.monotonic() - began:.1f} s")
    return result


async def test_read_only_commands_change_nothing_in_a_watched_database(canary: Canary) -> None:
    maintenance = canary.server.url()
    before = await snapshot(canary.url, maintenance)
    assert before["canary.ddl_count"] == (1, False), "the canary starts with no DDL recorded"
    slow = "SELECT id, total FROM shop.orders WHERE customer_id = 42 ORDER BY created_at DESC LIMIT 10"
    log = str(canary.log)
    # half the runs carry the password in the query string, which the report headers print (redacted)
    in_query = make_url(canary.url)._replace(password=None).update_query_dict({"password": canary.server.password})
    query_url = in_query.render_as_string(hide_password=False)
    assert canary.server.password in query_url
    commands = [
        ("doctor", canary.url, "--format", "table"),
        ("doctor", query_url, "--format", "json"),
        ("doctor", query_url, "--format", "markdown"),
        ("advise", query_url, "--format", "json"),
        ("advise", canary.url, "--query", slow, "-v"),
        ("advise", query_url, "--log", log, "--format", "markdown"),
        ("logs", log),
        ("logs", log, "--format", "json"),
        ("history", "snapshot", canary.url, "--store", canary.store),
        ("history", "snapshot", query_url, "--store", canary.store),
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda args: _cli(*args), commands))

    for args, result in zip(commands, results, strict=True):
        output = result.stdout + result.stderr
        assert "Traceback" not in output, (args[0], args[2:], output[-2000:])
        # doctor exits 1 for findings at or above warning (this database has some), every other command 0
        expected = 1 if args[0] == "doctor" else 0
        assert result.returncode == expected, (args[0], args[2:], result.returncode, output[-2000:])
        assert canary.server.password not in output, (args[0], args[2:])
    await _load_every_dashboard_page(canary)
    advise_query = results[4].stdout + results[4].stderr
    if canary.hypopg:
        assert "customer_id" in advise_query, advise_query[-2000:]  # the missing index, proposed and verified
    else:
        assert "hypopg" in advise_query.lower(), advise_query[-2000:]

    backends, locks = await _leftovers(canary.url)
    assert backends == [] and locks == [], (backends, locks)
    after = await snapshot(canary.url, maintenance)
    assert after == before, _diff(before, after)

    # The canary can fail: a rolled-back DDL (only the sequence step survives) and a committed write.
    conn = await asyncpg.connect(canary.url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("CREATE INDEX canary_probe ON shop.orders (customer_id)")
        await tx.rollback()
        await conn.execute("UPDATE shop.customers SET region = region WHERE id = 1")
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()
    touched = await snapshot(canary.url, maintenance)
    changed = set(_diff(before, touched))
    assert {"canary.ddl_count", "write_counters"} <= changed, changed
    assert "relations" not in changed, "the probe index was rolled back: no relation remains"


async def _load_every_dashboard_page(canary: Canary) -> None:
    """The dashboard's pages, each query's page (its generic-plan EXPLAIN) included, with history from the store."""
    import re

    import httpx

    from pgpulse.dashboard import app

    dashboard = app(canary.url, canary.store, production=False)
    try:
        transport = httpx.ASGITransport(app=dashboard)
        async with httpx.AsyncClient(transport=transport, base_url="http://canary") as client:
            queries = await client.get("/queries")
            assert queries.status_code == 200
            query_pages = sorted(set(re.findall(r'href="(/queries/-?\d+)"', queries.text)))
            assert query_pages, "the workload's statements are listed"
            for path in ["/", "/indexes", "/tables", "/connections", *query_pages]:
                page = await client.get(path)
                assert page.status_code in (200, 404), (path, page.status_code)
                assert canary.server.password not in page.text, path
    finally:
        await dashboard.close()


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
