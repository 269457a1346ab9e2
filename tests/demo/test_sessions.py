"""Reads in autocommit, writes in transactions: checked on the server, through ``now()``, which is the start
of the current transaction (same value twice inside one, different values across autocommit statements)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text


async def _two_nows(maker: Any) -> tuple[object, object]:
    async with maker() as session:
        first = (await session.execute(text("SELECT now()"))).scalar_one()
        await asyncio.sleep(0.02)  # the scenario: time passes between the statements, so two snapshots differ
        second = (await session.execute(text("SELECT now()"))).scalar_one()
    return first, second


async def test_write_sessions_are_transactions_and_read_sessions_are_not(citizen: Any) -> None:
    state = citizen.app.state
    first, second = await _two_nows(state.sessionmaker)
    assert first == second, "a write session must run its statements in one transaction"
    first, second = await _two_nows(state.read_sessionmaker)
    assert first != second, "a read session must not hold a transaction open"


async def test_pooled_connections_idle_outside_transactions(citizen: Any) -> None:
    """After a write commits and a read returns, nothing of the app is left idle in transaction."""
    client = citizen.client
    created = await client.post("/users", json={"name": "Tx", "email": "tx-check@example.org"})
    assert created.status_code == 201
    assert (await client.get(f"/users/{created.json()['id']}")).status_code == 200
    engine = citizen.app.state.engine
    async with engine.connect() as conn:
        idle_in_tx = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgpulse' "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            )
        ).scalar_one()
    assert idle_in_tx == 0
