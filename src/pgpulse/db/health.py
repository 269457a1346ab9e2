"""``GET /health/db``: is the database reachable, how fast, and how full is the pool.

A load balancer takes the instance out on 503; an operator reads ``checked_out`` near ``size + overflow``
as pool exhaustion before the timeouts start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

router = APIRouter(tags=["health"])
PING_TIMEOUT_S = 2.0


def pool_state(engine: AsyncEngine) -> dict[str, Any]:
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return {
            "class": type(pool).__name__,
            "size": pool.size(),
            "checked_out": pool.checkedout(),
            "overflow": max(0, pool.overflow()),  # SQLAlchemy counts down from -size
            "checked_in": pool.checkedin(),
        }
    return {"class": type(pool).__name__}


@router.get("/health/db", responses={503: {"description": "Database unreachable (body says why, with the pool state)"}})
async def health_db(request: Request) -> JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    # An app that admits requests to its pool in arrival order (CitizenApp's ``state.gate``) queues the ping
    # with them: outside the gate, gated requests would take every returned connection before it.
    gate = getattr(request.app.state, "gate", None)
    began = time.perf_counter()
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            async with gate.slot() if gate is not None else contextlib.nullcontext(), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy": say which, never a traceback
        return JSONResponse(
            status_code=503,
            content={"status": "unavailable", "error": type(exc).__name__, "pool": pool_state(engine)},
            headers={"Retry-After": "1"},
        )
    ping_ms = (time.perf_counter() - began) * 1000
    return JSONResponse({"status": "ok", "ping_ms": round(ping_ms, 3), "pool": pool_state(engine)})
