"""Lock chains with real sessions: a holder idle in a transaction, a row-lock waiter, and an ALTER TABLE
queued behind both. The root (the holder) is reported, with every waiter behind it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.blocked_queries import BlockedQueriesCheck

WAITING = """
SELECT count(*) FROM pg_locks
WHERE pid = ANY($1::int[]) AND NOT granted AND clock_timestamp() - waitstart > make_interval(secs => $2)
"""


async def test_the_root_of_a_lock_chain_comes_first_with_its_waiters(db: str, execute: Any, run_check: Any) -> None:
    await execute(db, "CREATE TABLE accounts (id int PRIMARY KEY, balance int)", "INSERT INTO accounts VALUES (1, 0)")
    holder, row_waiter, ddl_waiter, watcher = [await asyncpg.connect(db) for _ in range(4)]
    tasks: list[asyncio.Task[Any]] = []
    try:
        await holder.execute("BEGIN; UPDATE accounts SET balance = 100 WHERE id = 1")
        tasks.append(asyncio.create_task(row_waiter.execute("UPDATE accounts SET balance = 7 WHERE id = 1")))
        for _ in range(400):  # the ALTER must queue after the row waiter, so both wait on the holder
            if await watcher.fetchval(WAITING, [row_waiter.get_server_pid()], 0):
                break
            await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(ddl_waiter.execute("ALTER TABLE accounts ADD COLUMN note text")))
        waiter_pids = [row_waiter.get_server_pid(), ddl_waiter.get_server_pid()]
        for _ in range(400):  # both have waited at least 0.5 s
            if await watcher.fetchval(WAITING, waiter_pids, 0.5) == 2:
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the waiters never showed up in pg_locks")
        assert await run_check(db, BlockedQueriesCheck(min_wait_seconds=30)) == [], "under the threshold"
        [chain] = await run_check(db, BlockedQueriesCheck(min_wait_seconds=0.5))
        root = holder.get_server_pid()
        assert chain.object == f"backend {root}" and chain.severity is Severity.warning
        assert chain.evidence["root_state"] == "idle in transaction"
        assert chain.evidence["root_query"] == "BEGIN; UPDATE accounts SET balance = $? WHERE id = $?"
        waiting = {w["pid"]: w for w in chain.evidence["waiting"]}
        assert set(waiting) == set(waiter_pids)
        row = waiting[row_waiter.get_server_pid()]
        assert row["lock"].startswith("ShareLock on transaction ") and row["blocked_by"] == [root]
        assert row["query"] == "UPDATE accounts SET balance = $? WHERE id = $?", "the shape, never the values"
        ddl = waiting[ddl_waiter.get_server_pid()]
        assert ddl["lock"] == "AccessExclusiveLock on accounts" and root in ddl["blocked_by"]
        assert chain.fix is not None and chain.fix.startswith(f"SELECT pg_cancel_backend({root});")
    finally:
        holder.terminate()
        for task in tasks:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.wait_for(task, 10)
        for conn in (row_waiter, ddl_waiter, watcher):
            await conn.close(timeout=5)


async def test_no_waits_no_findings(db: str, run_check: Any) -> None:
    assert await run_check(db, BlockedQueriesCheck(min_wait_seconds=0)) == []
