"""Database failures as HTTP answers a client can act on, never a 500 with a traceback.

* pool exhausted, server down, connection dropped → 503 + ``Retry-After``: try again shortly;
* statement timeout (SQLSTATE 57014) → 504: this request was too slow, the connection is still fine.
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = structlog.get_logger("pgpulse.citizenapp")

QUERY_CANCELED = "57014"
RETRY_AFTER_S = "1"


def _sqlstate(error: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str):
            return state
        current = getattr(current, "orig", None) or current.__cause__
    return None


def classify(error: BaseException) -> tuple[int, str]:
    if isinstance(error, sa_exc.TimeoutError):
        return 503, "database connection pool exhausted"
    if _sqlstate(error) == QUERY_CANCELED:
        return 504, "database statement timeout"
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return 503, "database connection lost"
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, OSError, asyncio.TimeoutError)):
        return 503, "database unavailable"
    state = _sqlstate(error)
    if state is not None and state[:2] in ("08", "57", "53"):  # connection, operator intervention, resources
        return 503, "database unavailable"
    return 500, "database error"


async def _handle(request: Request, error: Exception) -> JSONResponse:
    status, detail = classify(error)
    log.warning("db_error", route=request.url.path, status=status, error=type(error).__name__, detail=detail)
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def install(app: FastAPI) -> None:
    for kind in (sa_exc.SQLAlchemyError, OSError, asyncio.TimeoutError):
        app.add_exception_handler(kind, _handle)
