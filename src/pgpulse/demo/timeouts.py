"""A statement timeout per read request, so one slow endpoint cannot hold a pooled connection for 30 s.

The server-wide ``statement_timeout`` (set on every connection by the engine) is a backstop sized for the
slowest legitimate query; a read endpoint should give up far sooner, free its connection for the next request
and tell the client so (504, see ``errors.py``). ``SET LOCAL`` scopes the limit to the request's transaction:
it ends with the rollback that returns the connection to the pool, so the next checkout gets the default back,
and it works behind PgBouncer in transaction mode, where a session-level ``SET`` would leak to other clients.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

READ_METHODS = frozenset({"GET", "HEAD"})


def limit_statements(session: AsyncSession, timeout_ms: int) -> None:
    """Cap every statement of ``session``'s transactions at ``timeout_ms``.

    Hooked on ``after_begin`` rather than run up front: a request that never touches the database pays no
    extra round trip, and a route that commits and reads again gets the limit in its next transaction too.
    """
    statement = f"SET LOCAL statement_timeout = {int(timeout_ms)}"

    def set_local(_session: Any, _transaction: Any, connection: Any) -> None:
        connection.exec_driver_sql(statement)

    event.listen(session.sync_session, "after_begin", set_local)
