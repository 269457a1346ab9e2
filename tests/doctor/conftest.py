"""Fixtures to run one doctor check against a fresh database on the real test server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio

from pgpulse.doctor.check import Check, Finding, Options
from pgpulse.doctor.runner import run_checks


async def _run_check(url: str, check: Check, options: Options | None = None) -> list[Finding]:
    report = await run_checks(url, options, checks=(check,))
    [result] = report.results
    assert result.skipped is None, result.skipped
    return result.findings


async def _execute(url: str, *statements: str) -> None:
    """Run statements as the superuser, then flush this backend's statistics so the doctor sees them."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


@pytest.fixture
def run_check() -> Callable[..., Awaitable[list[Finding]]]:
    return _run_check


@pytest.fixture
def execute() -> Callable[..., Awaitable[None]]:
    return _execute


@pytest_asyncio.fixture(loop_scope="session")
async def db(make_database) -> str:  # type: ignore[no-untyped-def]
    return str(await make_database("doc"))
