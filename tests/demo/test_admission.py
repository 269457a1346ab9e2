"""The pool gate admits in arrival order: a request that arrives while others wait never overtakes them.

The bug it fixes (SQLAlchemy's async pool waiting on ``asyncio.Queue``, where a newcomer takes a returned
connection before the woken waiter runs) made the single route's p99 30× its p50 at c=32; the benchmark
shows the latency side, this test the ordering itself, deterministically (no timing involved).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc as sa_exc

from pgpulse.demo.admission import ConnectionGate


async def test_waiters_are_admitted_first_come_first_served_and_newcomers_queue_behind() -> None:
    gate = ConnectionGate(slots=1, timeout=10.0)
    order: list[str] = []
    first_may_leave = asyncio.Event()
    late: list[asyncio.Task[None]] = []

    async def request(name: str) -> None:
        async with gate.slot():
            order.append(name)
            if name == "A":
                await first_may_leave.wait()
                # D becomes ready to run *before* A's slot is handed on: the moment an unfair queue lets
                # a newcomer take the returned connection ahead of the waiter it just woke (B)
                late.append(asyncio.create_task(request("D")))
                return  # the slot is released right here, in the same step
            await asyncio.sleep(0)  # hold the slot across a loop iteration, as a query would

    first = asyncio.create_task(request("A"))
    await asyncio.sleep(0)  # A holds the only slot
    waiting = [asyncio.create_task(request(n)) for n in "BC"]
    await asyncio.sleep(0)  # B then C wait
    first_may_leave.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), timeout=5)
    await asyncio.wait_for(late[0], timeout=5)
    assert order == ["A", "B", "C", "D"], order


async def test_a_wait_longer_than_the_pool_timeout_is_the_pools_timeout_error() -> None:
    gate = ConnectionGate(slots=1, timeout=0.05)
    async with gate.slot():
        with pytest.raises(sa_exc.TimeoutError, match="all 1 database connections busy"):
            async with gate.slot():
                pass
    async with gate.slot():  # the slot came back: the timed-out waiter took nothing with it
        pass
