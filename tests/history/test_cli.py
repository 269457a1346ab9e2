"""``pgpulse history`` from the command line: migrate, snapshot, collect --once over a targets file, mark then
diff --baseline, and the one-line refusals (the store in the audited database, bad retention, bad targets)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from pgpulse.cli import app
from pgpulse.db.databases import with_database
from pgpulse.history.store import migrate

from .conftest import run


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def cli_dbs(make_database: Callable[..., Awaitable[str]]) -> dict[str, str]:
    target = await make_database("hcli", extensions=("pg_stat_statements",))
    other = await make_database("hcli2", extensions=("pg_stat_statements",))
    store = await make_database("hclistore")
    await run(target, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 100)")
    return {"target": target, "other": other, "store": store}


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["history", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_store_in_the_audited_database_needs_the_explicit_flag(cli_dbs: dict[str, str]) -> None:
    code, _, err = _invoke("snapshot", cli_dbs["target"], "--store", cli_dbs["target"])
    assert code == 2
    assert "--store-in-target" in err and len(err.strip().splitlines()) == 1
    # The same database under another spelling (a different user/password) is still the same database.
    alias = cli_dbs["target"].replace("postgresql://", "postgres://")
    code, _, err = _invoke("snapshot", cli_dbs["target"], "--store", alias)
    assert code == 2 and "--store-in-target" in err
    assert _fetch(cli_dbs["target"], "SELECT nspname FROM pg_namespace WHERE nspname = 'pgpulse_history'") == []


def test_migrate_snapshot_collect_mark_and_diff(cli_dbs: dict[str, str], tmp_path: Path) -> None:
    store = cli_dbs["store"]
    code, _, err = _invoke("migrate", "--store", store)
    assert code == 0, err
    version = _fetch(store, "SELECT version_num FROM pgpulse_history.alembic_version")
    # the history store (0001), its request history (0002), the requests' new connections (0003)
    assert [r["version_num"] for r in version] == ["0003"]
    assert _fetch(store, "SELECT to_regclass('public.alembic_version') AS t")[0]["t"] is None

    targets = tmp_path / "targets"
    password_free = cli_dbs["other"].replace(cli_dbs["other"].split("@")[0].split(":")[-1], "${HIST_PW}", 1)
    targets.write_text(f"# two databases\nmain = {cli_dbs['target']}\n{password_free}  # named after host/port/db\n")
    env = {"HIST_PW": cli_dbs["other"].split("@")[0].split(":")[-1], "PGPULSE_HISTORY_STORE": store}
    code, _, err = _invoke("collect", "--targets", str(targets), "--once", env=env)
    assert code == 0, err
    assert "main: first snapshot" in err
    names = [r["name"] for r in _fetch(store, "SELECT name FROM pgpulse_history.target ORDER BY name")]
    other_name = with_database(cli_dbs["other"], cli_dbs["other"].rsplit("/", 1)[1]).split("@")[1]
    assert names == sorted(["main", other_name])

    code, _, err = _invoke("mark", "before-change", "--target", "main", env=env)
    assert code == 0 and "mark 'before-change'" in err
    asyncio.run(run(cli_dbs["target"], "SELECT * FROM t WHERE id = $1", repeat=3, args=(5,)))
    code, _, err = _invoke("snapshot", cli_dbs["target"], "--name", "main", env=env)
    assert code == 0, err
    code, out, err = _invoke("diff", "--target", "main", "--baseline", "before-change", "-f", "json", env=env)
    assert code == 0, err  # 3 calls: below every threshold
    report = json.loads(out)
    assert report["target"] == "main" and report["findings"] == []
    assert report["windows"]["current_snapshots"] == 1


def test_collect_refuses_bad_retention_and_missing_variables(cli_dbs: dict[str, str], tmp_path: Path) -> None:
    code, _, err = _invoke("collect", cli_dbs["target"], "--store", cli_dbs["store"], "--retention", "1h:2d", "--once")
    assert code == 2 and "first level must be raw" in err
    targets = tmp_path / "targets"
    targets.write_text("x = postgresql://u:${NOPE_NOT_SET}@h/db\n")
    code, _, err = _invoke("collect", "--targets", str(targets), "--store", cli_dbs["store"], "--once")
    assert code == 2 and f"{targets}:1: environment variable NOPE_NOT_SET is not set" in err


@pytest.mark.parametrize("every", ["0s", "five minutes"])
def test_collect_refuses_a_bad_interval(cli_dbs: dict[str, str], every: str) -> None:
    code, _, err = _invoke("collect", cli_dbs["target"], "--store", cli_dbs["store"], "--every", every, "--once")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_collect_loops_until_ctrl_c_and_stops_cleanly(cli_dbs: dict[str, str]) -> None:
    store, target = cli_dbs["store"], cli_dbs["target"]
    migrate(store)  # so the poll below can count from the start (collect would migrate on its own)
    count_sql = "SELECT count(*) AS n FROM pgpulse_history.snapshot s JOIN pgpulse_history.target t USING (target_id) "
    count_sql += "WHERE t.name = 'looping'"
    command = [sys.executable, "-m", "pgpulse.cli", "history", "collect", target, "--store", store]
    process = subprocess.Popen(
        [*command, "--name", "looping", "--every", "1s"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while _fetch(store, count_sql)[0]["n"] < 2:  # two rounds: it loops
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "collect did not take two snapshots in 60 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert err.strip().splitlines()[-1] == "stopped"
    assert "Traceback" not in err
