"""Replay lag with a real streaming replica: a primary (embedded PostgreSQL, wal_level = replica) and a standby
made with ``pg_basebackup -R`` from the same binaries. Healthy, neither side reports lag; with replay paused on
the standby and the primary writing, the standby's ``now() - pg_last_xact_replay_timestamp()`` and the
primary's ``pg_stat_replication.replay_lag`` grow past ``LAG_WARN_SECONDS`` and the check warns only then."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgpulse.demo.embedded import SYSTEM_USER, EmbeddedPostgres, bin_dir, ephemeral_server
from pgpulse.doctor.check import Finding, Severity
from pgpulse.doctor.checks.replication import LAG_WARN_SECONDS, ReplicationCheck

RunCheck = Callable[[str, ReplicationCheck], Awaitable[list[Finding]]]
DEADLINE_SECONDS = 20.0
WRITE_EVERY_SECONDS = 0.2

STREAMING = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
CAUGHT_UP = "SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
# the primary's own measure of the standby, read straight from the catalog to bracket each check
PRIMARY_LAG = "SELECT EXTRACT(EPOCH FROM replay_lag)::float FROM pg_stat_replication"


def _base_backup(primary: EmbeddedPostgres, target: Path) -> None:
    """``pg_basebackup -R`` as the server's system user, so the standby's files are owned like the primary's."""
    args = [str(bin_dir() / "pg_basebackup"), "-d", primary.url(), "-D", str(target), "-R", "-X", "stream"]
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses root; the embedded server runs as its system user
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(target.parent, entry.pw_uid, entry.pw_gid)
        as_user = {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd="/", check=False, **as_user)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def replica_pair() -> Iterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    """A primary and its streaming standby; both stopped (and their directories removed) whatever happens."""
    with ephemeral_server(settings={"wal_level": "replica", "max_wal_senders": "4"}) as primary:
        parent = Path(tempfile.mkdtemp(prefix="pgpulse-standby-"))
        standby = EmbeddedPostgres(data_dir=parent / "data", ephemeral=True, fast=True)
        try:
            _base_backup(primary, standby.data_dir)
            standby.start()  # a new free port; recovery settings come from -R (standby.signal, primary_conninfo)
            yield primary, standby
        finally:
            standby.stop("immediate")
            shutil.rmtree(parent, ignore_errors=True)


async def _poll(conn: asyncpg.Connection, sql: str, want: Any) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (got := await conn.fetchval(sql)) != want:
        assert time.monotonic() < deadline, f"{sql!r} still {got!r}, want {want!r}"
        await conn.execute("SELECT pg_sleep(0.05)")


async def test_streaming_replica_in_step_reports_no_lag(
    replica_pair: tuple[EmbeddedPostgres, EmbeddedPostgres], run_check: RunCheck
) -> None:
    primary, standby = replica_pair
    pconn = await asyncpg.connect(primary.url())
    sconn = await asyncpg.connect(standby.url())
    try:
        await _poll(pconn, STREAMING, 1)
        assert await sconn.fetchval("SELECT pg_is_in_recovery()") is True
        await pconn.execute("CREATE TABLE in_step AS SELECT 1 AS x")
        await _poll(sconn, "SELECT to_regclass('in_step') IS NOT NULL", True)
        await _poll(sconn, CAUGHT_UP, True)
        assert await run_check(standby.url(), ReplicationCheck()) == []
        assert await run_check(primary.url(), ReplicationCheck()) == []
    finally:
        await pconn.close()
        await sconn.close()


async def test_paused_replay_warns_from_five_seconds(
    replica_pair: tuple[EmbeddedPostgres, EmbeddedPostgres], run_check: RunCheck
) -> None:
    primary, standby = replica_pair
    pconn = await asyncpg.connect(primary.url())
    sconn = await asyncpg.connect(standby.url())
    try:
        await _poll(pconn, STREAMING, 1)
        await pconn.execute("CREATE TABLE ticks (at timestamptz DEFAULT now())")
        await _poll(sconn, "SELECT to_regclass('ticks') IS NOT NULL", True)
        await sconn.execute("SELECT pg_wal_replay_pause()")
        await _poll(sconn, "SELECT pg_get_wal_replay_pause_state()", "paused")
        # Frozen while paused: the commit time of the last transaction the standby replayed.
        replayed_at = await sconn.fetchval("SELECT EXTRACT(EPOCH FROM pg_last_xact_replay_timestamp())::float")
        assert replayed_at is not None

        standby_below = standby_above = primary_below = primary_above = False
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (standby_above and primary_above):
            assert time.monotonic() < deadline, (standby_below, standby_above, primary_below, primary_above)
            await pconn.execute("INSERT INTO ticks DEFAULT VALUES")
            behind = await sconn.fetchval("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()")

            before = time.time()
            findings = await run_check(standby.url(), ReplicationCheck())
            after = time.time()
            if after - replayed_at < LAG_WARN_SECONDS:
                assert findings == []
                standby_below = True
            elif behind and before - replayed_at >= LAG_WARN_SECONDS:
                [lag] = findings
                assert lag.severity is Severity.warning and lag.object == "server (replica)"
                assert before - replayed_at - 0.1 <= lag.evidence["lag_seconds"] <= after - replayed_at + 0.1
                assert lag.evidence["lag_seconds"] >= LAG_WARN_SECONDS
                standby_above = True

            # replay_lag grows while replay is stuck (the walsender interpolates towards the next unreplayed
            # sample), so the catalog value read before and after the check brackets what the check saw
            lag_before = await pconn.fetchval(PRIMARY_LAG)
            findings = await run_check(primary.url(), ReplicationCheck())
            lag_after = await pconn.fetchval(PRIMARY_LAG)
            if lag_after is not None and lag_after < LAG_WARN_SECONDS:
                assert findings == []
                primary_below = True
            elif lag_before is not None and lag_before > LAG_WARN_SECONDS:
                [lag] = findings
                assert lag.severity is Severity.warning and lag.object.startswith("standby ")
                assert lag_before <= lag.evidence["replay_lag_seconds"] <= lag_after
                assert lag.evidence["replay_lag_bytes"] > 0
                primary_above = True
            await asyncio.sleep(WRITE_EVERY_SECONDS)  # pacing of the writes, not a wait for a condition
        assert standby_below and primary_below  # each side was also sampled under the threshold
    finally:
        await sconn.execute("SELECT pg_wal_replay_resume()")
        await _poll(sconn, "SELECT pg_get_wal_replay_pause_state()", "not paused")
        await pconn.close()
        await sconn.close()
