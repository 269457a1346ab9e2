"""Database failures as HTTP answers a client can act on, never a 500 with a traceback.

* pool exhausted, server down, connection dropped → 503 + ``Retry-After``: try again shortly;
* statement timeout (SQLSTATE 57014) → 504: this request was too slow, the connection is still fine;
* a value PostgreSQL cannot store (a NUL character in text, a number out of range) → 422: the client's input
  is wrong, exactly like a validation error. Found by fuzzing: ``"name": "a\\u0000b"`` passes pydantic and
  PostgreSQL rejects it with SQLSTATE 22021; an id of 10**25 passes ``gt=0`` and asyncpg cannot encode it as
  bigint (a client-side ``DataError``, no SQLSTATE).
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = structlog.get_logger("pgpulse.citizenapp")

QUERY_CANCELED = "57014"
# character_not_in_repertoire, untranslatable_character, string_data_right_truncation, numeric_value_out_of_range,
# invalid_text_representation, datetime_field_overflow: data exceptions caused by the request's values.
REJECTED_VALUES = frozenset({"22021", "22P05", "22001", "22003", "22P02", "22008"})
RETRY_AFTER_S = "1"


def _chain(error: BaseException) -> list[BaseException]:
    """The error, the DBAPI error it wraps, the driver error that caused that, ... (cycle-safe)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return seen


def _sqlstate(error: BaseException) -> str | None:
    for link in _chain(error):
        state = getattr(link, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def _unencodable_parameter(error: BaseException) -> bool:
    """asyncpg refused to send a parameter (e.g. an int beyond bigint): raised before the query reached the server."""
    # asyncpg wraps the encoder's OverflowError/ValueError in a DataError; a server-side error has no Python cause.
    return any(
        isinstance(e, asyncpg.DataError) and isinstance(e.__cause__, (OverflowError, ValueError, TypeError))
        for e in _chain(error)
    )


def classify(error: BaseException) -> tuple[int, str]:
    if isinstance(error, sa_exc.TimeoutError):
        return 503, "database connection pool exhausted"
    state = _sqlstate(error)
    if state == QUERY_CANCELED:
        return 504, "database statement timeout"
    if state in REJECTED_VALUES or _unencodable_parameter(error):
        return 422, "a value in the request cannot be stored (e.g. a NUL character or a number out of range)"
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return 503, "database connection lost"
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, OSError, asyncio.TimeoutError)):
        return 503, "database unavailable"
    if state is not None and state[:2] in ("08", "57", "53"):  # connection, operator intervention, resources
        return 503, "database unavailable"
    return 500, "database error"


async def _handle(request: Request, error: Exception) -> JSONResponse:
    status, detail = classify(error)
    log.warning("db_error", route=request.url.path, status=status, error=type(error).__name__, detail=detail)
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    if status == 422:  # the shape FastAPI documents for every 422, so clients need one parser
        where = "body" if request.method in ("POST", "PUT", "PATCH") else "path"
        content: dict[str, object] = {"detail": [{"loc": [where], "msg": detail, "type": "value_error"}]}
    else:
        content = {"detail": detail}
    return JSONResponse(status_code=status, content=content, headers=headers)


def install(app: FastAPI) -> None:
    for kind in (sa_exc.SQLAlchemyError, OSError, asyncio.TimeoutError):
        app.add_exception_handler(kind, _handle)
