"""``--apply``: indexes created concurrently and valid; an interrupted build leaves nothing behind, or says
exactly what is left and how to remove it."""

from __future__ import annotations

import threading

import psycopg

from pgpulse.db.urls import libpq_url

SEED = "SELECT * FROM events WHERE account_id = $1 AND kind = 'buy' ORDER BY created_at DESC LIMIT 10"
NAME = "ix_events_account_id_kind_created_at"
INDEX_STATE = (
    "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s"
)


def _state(url: str) -> list[tuple[str, bool]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return list(conn.execute(INDEX_STATE, (NAME,)).fetchall())


def test_apply_creates_a_valid_index_and_measures_it(scratch, advise) -> None:  # type: ignore[no-untyped-def]
    code, out, err = advise(scratch, "-q", SEED, "--apply", "--yes", "--measure", "-f", "markdown")
    assert code == 0, err
    assert f"{NAME}: created in" in err
    assert _state(scratch) == [(NAME, True)]
    assert "× faster" in out  # measured before and after, with the index really there
    again_code, again, _ = advise(scratch, "-q", SEED, "-f", "json")
    assert again_code == 0 and '"status": "covered"' in again


def test_interrupted_build_is_cleaned_up(scratch, advise) -> None:  # type: ignore[no-untyped-def]
    # An open transaction that wrote to the table: CREATE INDEX CONCURRENTLY creates the (invalid) index, waits
    # for this transaction to end and runs into lock_timeout. The transaction ends a second later, while the
    # advisor waits (longer) to drop the leftover.
    with psycopg.connect(libpq_url(scratch)) as blocker:
        blocker.execute("UPDATE events SET note = note WHERE id = 1")
        threading.Timer(1.0, blocker.rollback).start()
        code, _, err = advise(scratch, "-q", SEED, "--apply", "--yes", "--lock-timeout-ms", "300")
    assert code == 1
    assert f"{NAME}: not created" in err and "lock timeout" in err and "nothing left behind" in err
    assert _state(scratch) == []
    with psycopg.connect(libpq_url(scratch)) as conn:
        assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone() == (0,)


def test_leftover_that_cannot_be_dropped_yet_is_named_with_the_fix(scratch, advise) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(libpq_url(scratch)) as blocker:
        blocker.execute("UPDATE events SET note = note WHERE id = 1")
        code, _, err = advise(scratch, "-q", SEED, "--apply", "--yes", "--lock-timeout-ms", "100")
        assert code == 1
        flat = " ".join(err.split())
        assert f"DROP INDEX CONCURRENTLY IF EXISTS public.{NAME}" in flat
        assert _state(scratch) == [(NAME, False)]
        blocker.rollback()
