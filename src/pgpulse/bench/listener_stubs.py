"""What the listener benchmarks feed the profiler's SQLAlchemy listeners in place of a database: an execution
context, a cursor, and the no-op listeners that price the call itself. Shared by the profiler pair
(``profiler_overhead``) and the integration benchmarks (``integrations``, ``otel_cost``), so each measures the
same thing."""

from __future__ import annotations

from typing import Any


class StubContext:
    """Stands in for SQLAlchemy's execution context: the listeners read ``statement`` and set one attribute."""

    def __init__(self, statement: str) -> None:
        self.statement = statement


class StubCursor:
    rowcount = 1


def noop_before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> Any:
    return statement, parameters


def noop_after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    return None
