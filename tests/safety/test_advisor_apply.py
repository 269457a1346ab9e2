"""Attacks on ``advise --apply``: it changes only what it created, under names that are really its own.

The old ``--apply`` dropped a valid index another session had just built under the same name, reported two
indexes "created" when one name truncated at 63 bytes onto the other, and failed on partitioned tables.
"""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from pgpulse.db.databases import create_database
from pgpulse.demo.embedded import EmbeddedPostgres

from . import advisor_attack as attack  # a helper module beside the tests, shared by the four files

INDEXES_SQL = """
SELECT c.oid::int8, c.relname, t.relname AS table_name, i.indisvalid, pg_get_indexdef(i.indexrelid) AS definition,
       (SELECT p.relname FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent WHERE h.inhrelid = c.oid) AS parent
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
 WHERE c.relnamespace = 'public'::regnamespace
 ORDER BY c.relname
"""


def _db(server: EmbeddedPostgres, name: str, schema: str) -> str:
    url = asyncio.run(create_database(server.url(), name, replace=True))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        conn.execute(schema)
        conn.execute("ANALYZE")
    return url


def _indexes(url: str) -> dict[str, tuple[int, str, bool, str, str | None]]:
    with psycopg.connect(url) as conn:
        return {r[1]: (r[0], r[2], r[3], r[4], r[5]) for r in conn.execute(INDEXES_SQL).fetchall()}


def test_partitioned_table_gets_a_valid_index_on_the_parent_and_every_partition(hypo_server) -> None:  # type: ignore[no-untyped-def]
    url = _db(
        hypo_server,
        "apply_partitioned",
        """
        CREATE TABLE m (id int, sensor int, v int) PARTITION BY RANGE (id);
        CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10000);
        CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10000) TO (20000) PARTITION BY HASH (sensor);
        CREATE TABLE m2a PARTITION OF m2 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
        CREATE TABLE m2b PARTITION OF m2 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
        CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (20000) TO (30000);
        INSERT INTO m SELECT g, g % 1000, g FROM generate_series(0, 29999) g;
        """,
    )
    code, _, err = attack.run_advise(url, "-q", "SELECT * FROM m WHERE sensor = 5", "--apply", "--yes")
    assert code == 0, err
    assert "ix_m_sensor: created" in err
    found = {name: (table, valid, parent) for name, (_, table, valid, _, parent) in _indexes(url).items()}
    assert found == {
        "ix_m_sensor": ("m", True, None),
        "ix_m1_sensor": ("m1", True, "ix_m_sensor"),
        "ix_m2_sensor": ("m2", True, "ix_m_sensor"),
        "ix_m2a_sensor": ("m2a", True, "ix_m2_sensor"),
        "ix_m2b_sensor": ("m2b", True, "ix_m2_sensor"),
        "ix_m3_sensor": ("m3", True, "ix_m_sensor"),
    }


def test_names_that_collide_after_63_bytes_become_two_distinct_indexes(hypo_server) -> None:  # type: ignore[no-untyped-def]
    table = "sensor_readings_from_the_northern_hemisphere"  # 44 bytes: "ix_<table>_" already takes 48
    a, b = "calibrated_value_primary", "calibrated_value_secondary"
    url = _db(
        hypo_server,
        "apply_truncation",
        f"CREATE TABLE {table} (id int, {a} int, {b} int);"
        f"INSERT INTO {table} SELECT g, g % 5000, g % 4999 FROM generate_series(1, 30000) g;",
    )
    queries = [f"SELECT * FROM {table} WHERE {a} = 7", f"SELECT * FROM {table} WHERE {b} = 8"]
    code, _, err = attack.run_advise(url, *attack.args_for(queries), "--apply", "--yes")
    assert code == 0, err
    found = _indexes(url)
    assert len(found) == 2
    by_column = {definition.rsplit("(", 1)[1].rstrip(")"): name for name, (_, _, _, definition, _) in found.items()}
    assert set(by_column) == {a, b}
    for name, (_, _, valid, _, _) in found.items():
        assert valid and len(name.encode()) <= 63
        assert f"{name}: created" in " ".join(err.split())  # reported under the name it really has
    assert err.count(": created") == 2


def test_a_name_taken_before_the_run_is_left_alone_and_another_is_chosen(hypo_server) -> None:  # type: ignore[no-untyped-def]
    url = _db(
        hypo_server,
        "apply_taken",
        'CREATE TABLE "Order" (id int, "User" int, note text);'
        "INSERT INTO \"Order\" SELECT g, g % 3000, 'n' || g FROM generate_series(1, 30000) g;"
        'CREATE TABLE other (x int); CREATE INDEX "ix_Order_User" ON other (x);',
    )
    before = _indexes(url)["ix_Order_User"]
    code, _, err = attack.run_advise(url, "-q", 'SELECT * FROM "Order" WHERE "User" = 5', "--apply", "--yes")
    assert code == 0, err
    found = _indexes(url)
    assert found["ix_Order_User"] == before  # same OID, same table, still valid
    assert found["ix_Order_User_2"][1:4] == (
        "Order",
        True,
        'CREATE INDEX "ix_Order_User_2" ON public."Order" USING btree ("User")',
    )
    assert "ix_Order_User_2: created" in err


def test_a_name_taken_by_another_session_during_the_build_survives(hypo_server) -> None:  # type: ignore[no-untyped-def]
    url = _db(
        hypo_server,
        "apply_race",
        "CREATE TABLE events (id int, account int); CREATE TABLE other (x int);"
        "INSERT INTO events SELECT g, g % 3000 FROM generate_series(1, 30000) g;",
    )
    created: dict[str, int] = {}
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as rival:
        # The holder's lock makes our CREATE INDEX CONCURRENTLY wait (after its name check, before it creates
        # anything); the rival then takes the name, and the holder lets go.
        holder.execute("LOCK TABLE events IN SHARE UPDATE EXCLUSIVE MODE")

        def race() -> None:
            deadline = time.monotonic() + 30
            while not rival.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgpulse-advise-apply' "
                "AND wait_event_type = 'Lock'"
            ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline
                rival.execute("SELECT pg_sleep(0.02)")
            rival.execute("CREATE INDEX ix_events_account ON other (x)")
            created["oid"] = rival.execute("SELECT 'ix_events_account'::regclass::oid::int8").fetchone()[0]  # type: ignore[index]
            holder.rollback()

        thread = threading.Thread(target=race)
        thread.start()
        code, _, err = attack.run_advise(
            url, "-q", "SELECT * FROM events WHERE account = 5", "--apply", "--yes", "--lock-timeout-ms", "20000"
        )
        thread.join()
    assert code == 1
    assert "ix_events_account: not created: another session created a relation of that name" in " ".join(err.split())
    found = _indexes(url)
    assert found == {"ix_events_account": (created["oid"], "other", True, found["ix_events_account"][3], None)}


def test_interrupted_build_drops_only_its_own_invalid_index(hypo_server) -> None:  # type: ignore[no-untyped-def]
    url = _db(
        hypo_server,
        "apply_interrupted",
        'CREATE TABLE "Order" (id int, "User" int, "select" int);'
        'INSERT INTO "Order" SELECT g, g % 3000, 1 FROM generate_series(1, 30000) g;',
    )
    # someone else's INVALID index (a failed unique build)
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute('CREATE UNIQUE INDEX CONCURRENTLY theirs ON "Order" ("select")')
    theirs = _indexes(url)["theirs"]
    assert theirs[2] is False
    with psycopg.connect(url) as blocker:
        blocker.execute('UPDATE "Order" SET id = id WHERE id = 1')  # CONCURRENTLY waits for this transaction

        def release_once_the_cleanup_waits() -> None:
            """The build times out waiting for the blocker and leaves an INVALID index; its removal waits for the
            blocker too (10x longer): release the blocker only then, whatever the machine's speed."""
            with psycopg.connect(url, autocommit=True) as watch:
                deadline = time.monotonic() + 120
                while (
                    time.monotonic() < deadline
                    and not watch.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query ILIKE '%DROP INDEX%' "
                        "AND wait_event_type = 'Lock'"
                    ).fetchone()
                ):
                    watch.execute("SELECT pg_sleep(0.02)")
            blocker.rollback()

        releaser = threading.Thread(target=release_once_the_cleanup_waits)
        releaser.start()
        code, _, err = attack.run_advise(
            url, "-q", 'SELECT * FROM "Order" WHERE "User" = 5', "--apply", "--yes", "--lock-timeout-ms", "300"
        )
        releaser.join()
    assert code == 1
    flat = " ".join(err.split())
    assert "ix_Order_User: not created: canceling statement due to lock timeout; nothing left behind" in flat
    assert _indexes(url) == {"theirs": theirs}


def test_apply_asks_and_refuses_without_yes_off_a_terminal(hypo_server) -> None:  # type: ignore[no-untyped-def]
    url = _db(
        hypo_server,
        "apply_confirm",
        "CREATE TABLE events (id int, account int);"
        "INSERT INTO events SELECT g, g % 3000 FROM generate_series(1, 30000) g;",
    )
    code, out, err = attack.run_advise(url, "-q", "SELECT * FROM events WHERE account = 5", "--apply")
    assert (code, out) == (2, "")
    assert "pass --yes" in err and err.count("\n") == 1
    assert _indexes(url) == {}
    with psycopg.connect(url) as conn:  # another --apply holds pgpulse's advisory lock
        from pgpulse.advisor.apply import ADVISORY_KEY

        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
        code, _, err = attack.run_advise(url, "-q", "SELECT * FROM events WHERE account = 5", "--apply", "--yes")
        assert code == 1 and "another pgpulse --apply is running" in err
    assert _indexes(url) == {}


def test_hostile_table_and_column_names_are_quoted_everywhere(hypo_server) -> None:  # type: ignore[no-untyped-def]
    table = 'we""ird; DROP TABLE victim; --'  # as written in SQL: the name is we"ird; DROP TABLE victim; --
    url = _db(
        hypo_server,
        "apply_quoting",
        "CREATE TABLE victim (id int PRIMARY KEY);"
        f'CREATE TABLE "{table}" (id int, "Select" int, "user" int);'
        f'INSERT INTO "{table}" SELECT g, g % 3000, g % 2900 FROM generate_series(1, 30000) g;',
    )
    victim = _indexes(url)["victim_pkey"]
    query = f'SELECT * FROM "{table}" WHERE "Select" = 5 AND "user" = 7'
    code, _, err = attack.run_advise(url, "-q", query, "--apply", "--yes")
    assert code == 0, err
    found = _indexes(url)
    assert found.pop("victim_pkey") == victim
    [(name, (_, table_name, valid, definition, _))] = found.items()
    assert (table_name, valid) == ('we"ird; DROP TABLE victim; --', True)
    assert definition.endswith('USING btree ("Select", "user")')
    assert name == 'ix_we"ird; DROP TABLE victim; --_Select_user' and f"{name}: created" in " ".join(err.split())


QUERY = "SELECT * FROM events WHERE account = 5"


def test_apply_on_a_terminal_asks_and_a_no_changes_nothing(hypo_server) -> None:  # type: ignore[no-untyped-def]
    url = _db(
        hypo_server,
        "apply_terminal",
        "CREATE TABLE events (id int, account int);"
        "INSERT INTO events SELECT g, g % 3000 FROM generate_series(1, 30000) g;",
    )
    controller, terminal = pty.openpty()  # stdin is a terminal: --apply asks first
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgpulse.cli", "advise", url, "-q", QUERY, "--apply", "-f", "json"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, b"n\n")  # the answer waits in the terminal until the prompt reads it
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 1, err
    assert "Create 1 index(es) on" in out and "ix_events_account" in out and "nothing applied" in err
    assert _indexes(url) == {}
