"""Database failures as HTTP answers a client can act on, never a 500 with a traceback.

* pool exhausted, server down, connection dropped → 503 + ``Retry-After``: try again shortly;
* statement timeout (SQLSTATE 57014) → 504: this request was too slow, the connection is still fine;
* a value PostgreSQL cannot store (a NUL character in text, a number out of range) → 422: the client's input
  is wrong, exactly like a validation error. Found by fuzzing: ``"name": "a\\u0000b"`` passes pydantic and
  PostgreSQL rejects it with SQLSTATE 22021; an id of 10**25 passes ``gt=0`` and asyncpg cannot encode it as
  bigint (a client-side ``DataError``, no SQLSTATE).
* a request that fails validation → 422 in FastAPI's shape, the echoed input cut at ``ECHO_MAX_CHARS`` and
  non-ASCII escaped (a lone surrogate cannot be encoded as UTF-8).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = structlog.get_logger("pgpulse.demo")

QUERY_CANCELED = "57014"
# character_not_in_repertoire, untranslatable_character, string_data_right_truncation, numeric_value_out_of_range,
# invalid_text_representation, datetime_field_overflow: data exceptions caused by the request's values.
REJECTED_VALUES = frozenset({"22021", "22P05", "22001", "22003", "22P02", "22008"})
RETRY_AFTER_S = "1"
ECHO_MAX_CHARS = 200  # of a rejected value, in a 422 body


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
    # connection, operator intervention, resources; and the app's own configuration: a wrong password (28P01)
    # or a dropped database (3D000) is an outage for the client, not a bug in its request
    if state is not None and state[:2] in ("08", "57", "53", "28", "3D"):
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


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate from the request (``"\\ud800"``) stays a valid escape
    instead of failing to encode as UTF-8 (which turned every such 422 into a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _echo(value: Any) -> Any:
    """A rejected value as the error body may show it: whole when short, else cut with its size stated."""
    if isinstance(value, str):
        return value if len(value) <= ECHO_MAX_CHARS else f"{value[:ECHO_MAX_CHARS]}… ({len(value):,} characters)"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no Infinity: a body with 1e400 reaches us as inf
    if value is None or isinstance(value, (bool, int, float)):
        return value
    encoded = json.dumps(jsonable_encoder(value), ensure_ascii=True, default=str)
    if "Infinity" in encoded or "NaN" in encoded:  # a non-finite float nested in the value
        return f"{encoded[:ECHO_MAX_CHARS]}… (not echoed as JSON: holds a non-finite number)"
    if len(encoded) <= ECHO_MAX_CHARS:
        return jsonable_encoder(value)
    return f"{encoded[:ECHO_MAX_CHARS]}… ({len(encoded):,} characters of JSON)"


async def _validation(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 body (``detail``: ``loc``, ``msg``, ``type``, ``input``), with every echoed string capped:
    a 100 KB field must not come back as a 100 KB error (nor fill the logs of whoever records responses)."""
    assert isinstance(error, RequestValidationError)
    detail = []
    for item in error.errors():
        entry: dict[str, Any] = {
            "type": item.get("type"),
            "loc": [_echo(part) for part in item.get("loc", ())],
            "msg": _echo(str(item.get("msg", ""))),
        }
        if "input" in item:
            entry["input"] = _echo(item["input"])
        detail.append(entry)
    return AsciiJSONResponse(status_code=422, content={"detail": detail})


def install(app: FastAPI) -> None:
    for kind in (sa_exc.SQLAlchemyError, OSError, asyncio.TimeoutError):
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(RequestValidationError, _validation)
