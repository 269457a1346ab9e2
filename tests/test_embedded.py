"""The embedded server: real start/stop, password auth, pg_stat_statements preloaded, nothing left running."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from pgpulse.demo.embedded import EmbeddedPostgres, ephemeral_server, process_alive


async def test_session_server_answers_and_preloads_pg_stat_statements(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        if not os.environ.get("PGPULSE_TEST_DATABASE_URL"):
            assert "pg_stat_statements" in await conn.fetchval("SHOW shared_preload_libraries")
    finally:
        await conn.close()


def test_start_stop_leaves_no_process_and_rejects_wrong_password(tmp_path: Path) -> None:
    server = EmbeddedPostgres(data_dir=tmp_path / "data", fast=True)
    server.start()
    try:
        pid = server.pid()
        assert pid is not None and server.port is not None
        assert server.startup_seconds < 30

        async def probe() -> None:
            conn = await asyncpg.connect(server.url())
            assert await conn.fetchval("SHOW port") == str(server.port)
            await conn.close()
            bad = server.url().replace(server.password, "wrong-password")
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(bad)

        asyncio.run(probe())
        # A second start on a running cluster reuses it instead of failing.
        again = EmbeddedPostgres(data_dir=tmp_path / "data").start()
        assert again.port == server.port
    finally:
        server.stop()
    assert server.pid() is None
    assert not process_alive(pid)
    # Data survive a stop (demo databases persist); a restart picks them up with the same password.
    restarted = EmbeddedPostgres(data_dir=tmp_path / "data", fast=True).start()
    try:
        assert restarted.password == server.password
    finally:
        restarted.stop()


def test_ephemeral_server_deletes_its_data() -> None:
    with ephemeral_server() as server:
        data = server.data_dir
        assert (data / "PG_VERSION").exists()
    assert not data.exists()
