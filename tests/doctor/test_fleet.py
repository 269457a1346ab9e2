"""A fleet: 50 databases on a server of their own (Debian's PostgreSQL 15 when installed, else a second embedded
cluster; thrown away whole at the end, which is far cheaper than 50 DROP DATABASE checkpoints), two on the
session's test server, and one that cannot be reached — audited concurrently by one command, under 60 s, each
with its own report, the unreachable one a finding rather than an abort."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pgpulse.db.databases import create_database
from pgpulse.db.targets import Target, parse_targets
from pgpulse.demo.embedded import EmbeddedPostgres, ephemeral_server, free_port
from pgpulse.doctor.check import Options, Severity
from pgpulse.doctor.fleet import audit_one

from .test_runner_and_cli import doctor

DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")
FLEET = 50


@pytest.fixture(scope="module")
def fleet_server() -> Iterator[EmbeddedPostgres]:
    with ephemeral_server(bins=DEBIAN_PG15 if (DEBIAN_PG15 / "postgres").exists() else None) as server:
        yield server


async def _fill(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_fifty_databases_on_one_server_and_two_on_another(
    make_database: Any, fleet_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    began = time.perf_counter()
    urls: list[str] = []
    for first in range(0, FLEET, 10):  # CREATE DATABASE runs well side by side; ten at a time
        batch = range(first, first + 10)
        urls += await asyncio.gather(*(create_database(fleet_server.url(), f"fleet_{i:02d}") for i in batch))
    await _fill(urls[7], "CREATE TABLE no_key (payload text)")
    far = [await make_database("far") for i in range(2)]
    await _fill(far[1], "CREATE TABLE also_no_key (payload text)")
    print(f"created {FLEET + 2} databases in {time.perf_counter() - began:.1f} s")
    gone = f"postgresql://app:gone-secret@127.0.0.1:{free_port()}/nowhere"
    lines = ["# name url", *(f"db{i:02d} {url}" for i, url in enumerate(urls)), f"far0 {far[0]}", far[1], gone]
    (tmp_path / "targets").write_text("\n".join(lines) + "\n")

    began = time.perf_counter()
    result = doctor("--targets", str(tmp_path / "targets"), "--format", "json")
    took = time.perf_counter() - began
    print(f"audited {FLEET + 3} databases in {took:.1f} s (the whole command)")
    assert took < 60, f"{FLEET + 3} databases took {took:.1f} s"
    assert result.returncode == 1, result.stderr
    for url in [*urls, *far, gone]:
        password = make_url(url).password
        assert password is not None and password not in result.stdout + result.stderr
    fleet = json.loads(result.stdout)
    databases = fleet["databases"]
    assert [d["name"] for d in databases[: FLEET + 1]] == [*(f"db{i:02d}" for i in range(FLEET)), "far0"]
    assert databases[FLEET + 1]["name"].startswith("postgresql://postgres:***@")
    checks_with_findings = {d["name"]: {f["check"] for f in d["findings"]} for d in databases}
    assert "primary_keys" in checks_with_findings["db07"]
    assert all("primary_keys" not in checks_with_findings[f"db{i:02d}"] for i in range(FLEET) if i != 7)
    assert "primary_keys" in checks_with_findings[databases[FLEET + 1]["name"]]
    pg15 = (DEBIAN_PG15 / "postgres").exists()
    assert databases[0]["server_version"].startswith("15." if pg15 else "18.")
    # "far" is on the suite's own server: the embedded 18, or whatever PGPULSE_TEST_DATABASE_URL points at
    conn = await asyncpg.connect(far[0])
    try:
        far_version = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    if not os.environ.get("PGPULSE_TEST_DATABASE_URL"):
        assert far_version.startswith("18.")
    assert databases[FLEET]["server_version"] == far_version
    unreachable = databases[-1]
    assert unreachable["worst"] == "critical" and unreachable["error"].startswith("cannot audit: cannot connect")
    assert unreachable["database"] == "postgresql://app:***@" + gone.split("@")[1]
    assert all(d.get("error") is None and d["worst"] == "warning" for d in databases[:-1])
    assert fleet["summary"] == {
        "databases": FLEET + 3,
        "worst": "critical",
        "by_worst_severity": {"warning": FLEET + 2, "critical": 1},
        "unreachable": 1,
        "seconds": fleet["summary"]["seconds"],
    }
    assert fleet["summary"]["seconds"] < 60


async def test_a_budget_that_runs_out_skips_the_rest_and_says_so(db: str) -> None:
    audit = await audit_one(Target("tiny", db), Options(), budget_seconds=0)
    assert audit.report is not None and all(
        "time budget (0 s) ran out" in (r.skipped or "") for r in audit.report.results
    )
    assert audit.failure is not None and audit.failure.severity is Severity.warning
    assert audit.failure.title.startswith(f"the 0 s budget ran out before {len(audit.report.results)} check(s)")


def test_targets_file_lines() -> None:
    assert parse_targets("# fleet\n\nprod postgresql://u:p@h/db\npostgresql://u:p@h2/db2\n") == [
        Target("prod", "postgresql://u:p@h/db"),
        Target("postgresql://u:***@h2/db2", "postgresql://u:p@h2/db2"),
    ]
    with pytest.raises(Exception, match="targets:1: expected URL, NAME URL or NAME = URL"):
        parse_targets("a b c")
