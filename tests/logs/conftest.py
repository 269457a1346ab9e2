"""Logs written by a real PostgreSQL: one throw-away server logging every statement in three formats at once.

The logging collector writes stderr, csvlog and jsonlog files for the same workload, so the tests can check
that the reader reaches the same answer from each format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from pgpulse.demo.embedded import ephemeral_server

SECRET = "hunter2-do-not-log"
SETTINGS = {
    "log_min_duration_statement": "0",
    "logging_collector": "on",
    "log_destination": "'stderr,csvlog,jsonlog'",
    "log_directory": "'log'",
    "log_filename": "'postgresql.log'",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "log_rotation_age": "0",
    "log_rotation_size": "0",
}
MARKER = "SELECT 'end of workload' AS marker"


@dataclass
class ServerLogs:
    stderr: Path
    csv: Path
    json: Path


async def _workload(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE items (id int PRIMARY KEY, owner text, price numeric)")
        await conn.execute("INSERT INTO items SELECT g, 'owner' || (g % 50), g FROM generate_series(1, 5000) g")
        await conn.execute("ANALYZE items")
        # Extended protocol: parse/bind/execute lines, with parameters in DETAIL lines (which must never show).
        for i in range(7):
            await conn.fetchval("SELECT count(*) FROM items WHERE owner = $1 AND price > $2", SECRET, i)
        # Simple protocol with different constants: one query shape.
        for i in range(5):
            await conn.execute(f"SELECT * FROM items WHERE id = {i + 1}")
        # A statement written over several lines (continuation lines in the stderr log start with a tab).
        await conn.execute("SELECT owner,\n       sum(price)\n  FROM items\n GROUP BY owner\n ORDER BY 2 DESC")
        # auto_explain, loaded for this session only: a plan entry in text format, then in JSON.
        await conn.execute("LOAD 'auto_explain'")
        await conn.execute("SET auto_explain.log_min_duration = 0")
        await conn.execute("SET auto_explain.log_analyze = on")
        await conn.execute("SELECT max(price) FROM items WHERE owner = 'owner7'")
        await conn.execute("SET auto_explain.log_format = json")
        await conn.execute("SELECT min(price) FROM items WHERE owner = 'owner8'")
        await conn.execute(MARKER)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def log_secret() -> str:
    return SECRET


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def server_logs() -> AsyncIterator[ServerLogs]:
    with ephemeral_server(settings=SETTINGS) as server:
        await _workload(server.url())
        logs = ServerLogs(
            stderr=server.data_dir / "log" / "postgresql.log",
            csv=server.data_dir / "log" / "postgresql.csv",
            json=server.data_dir / "log" / "postgresql.json",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the collector writes asynchronously
            if all(p.exists() and "end of workload" in p.read_text(errors="replace") for p in vars(logs).values()):
                break
            await asyncio.sleep(0.1)
        copies = ServerLogs(**{k: Path(str(v) + ".copy") for k, v in vars(logs).items()})
        for name, path in vars(logs).items():
            getattr(copies, name).write_bytes(path.read_bytes())
        yield copies
