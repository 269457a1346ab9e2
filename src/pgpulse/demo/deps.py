"""Sessions via ``Depends``: one AsyncSession per request, closed (connection returned) even on cancel.

Closing runs after the response has started, so it must never raise: an error there cannot become a 503 any
more, it turns into "Exception in ASGI application" and a connection cut mid-response. It does happen: when
the server kills a backend mid-query (restart, ``pg_terminate_backend``), asyncpg can be left believing the
dead operation is still in progress and the rollback on close fails with ``InternalClientError``, which
SQLAlchemy does not recognise as a disconnect. We then invalidate the session: the connection is discarded,
never handed to the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pgpulse.demo.admission import ConnectionGate
from pgpulse.demo.timeouts import READ_METHODS, limit_statements

log = structlog.get_logger("pgpulse.demo")


async def release(session: AsyncSession) -> None:
    """Close ``session``; if its connection is broken, discard it instead of failing the request."""
    try:
        await session.close()
    except Exception as exc:
        log.warning("session_close_failed", error=type(exc).__name__, action="connection invalidated")
        with contextlib.suppress(Exception):
            await session.invalidate()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    state = request.app.state
    timeout_ms = state.settings.route_statement_timeout_ms
    reading = request.method in READ_METHODS
    gate: ConnectionGate | None = state.gate
    # In arrival order (admission.py): the pool's own wait lets late requests overtake early ones.
    async with gate.slot() if gate is not None else contextlib.nullcontext():
        if reading and not timeout_ms:
            session: AsyncSession = state.read_sessionmaker()  # autocommit: no BEGIN/ROLLBACK round trips
        else:
            session = state.sessionmaker()
            if reading:  # SET LOCAL needs the transaction
                limit_statements(session, timeout_ms)
        try:
            yield session
        finally:
            # Shielded: a request cancelled mid-query still returns (or discards) its connection.
            await asyncio.shield(release(session))


SessionDep = Annotated[AsyncSession, Depends(get_session)]
