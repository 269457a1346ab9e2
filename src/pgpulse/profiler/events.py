"""SQLAlchemy listeners: the profiler's only contact with the application's queries.

Hot-path budget (measured in ``pgpulse.bench.profiler_overhead``): a contextvar read, two
``perf_counter()`` calls, a cached fingerprint lookup, a list append and two histogram observations. No
string formatting, no stack walk, no logging unless a threshold trips (slow query, Nth repeat).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session

from pgpulse.profiler import metrics
from pgpulse.profiler.context import QueryEvent, current
from pgpulse.profiler.nplusone import find_site
from pgpulse.sql import fingerprint, normalize

log = structlog.get_logger("pgpulse.profiler")
_START = "_pgpulse_started"
_COUNTED = "pgpulse_checked_out"


@dataclass
class ProfilerConfig:
    threshold: int = 5
    slow_query_ms: float = 200.0
    log_parameters: bool = False
    sqlcommenter: bool = False
    pool_name: str = "default"


def _relationship_name(state: ORMExecuteState) -> str | None:
    path = state.loader_strategy_path
    if path is None:
        return None
    prop = getattr(path, "prop", None)
    if prop is None:
        return None
    return f"{prop.parent.class_.__name__}.{prop.key}"


def _on_orm_execute(state: ORMExecuteState) -> None:
    record = current()
    if record is None or not state.is_relationship_load:
        return
    name = _relationship_name(state)
    if name is None:
        return
    record.pending_relationship = name
    target = name and state.loader_strategy_path
    mapper = getattr(getattr(target, "prop", None), "mapper", None)
    if mapper is not None:
        record.loaded_by.setdefault(mapper.class_.__name__, name)


_orm_listener_installed = False


def _install_orm_listener() -> None:
    global _orm_listener_installed
    if not _orm_listener_installed:
        event.listen(Session, "do_orm_execute", _on_orm_execute)
        _orm_listener_installed = True


def _comment(route: str) -> str:
    return f" /*route='{quote(route, safe='')}'*/"


def instrument(
    engine: Engine | AsyncEngine,
    *,
    threshold: int = 5,
    slow_query_ms: float = 200.0,
    log_parameters: bool = False,
    sqlcommenter: bool = False,
    pool_name: str = "default",
) -> ProfilerConfig:
    """Attach the profiler to ``engine`` (sync or async). Returns its config; call once per engine.

    ``sqlcommenter`` appends ``/*route='/users/{user_id}/posts'*/`` to each statement so server logs and
    ``pg_stat_statements.query`` show which endpoint sent it. PostgreSQL computes ``queryid`` without
    comments, so grouping by queryid is unchanged, but the text kept for a group is the first route's;
    and every distinct comment is a distinct prepared statement in asyncpg's cache. Off by default.
    """
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    config = ProfilerConfig(threshold, slow_query_ms, log_parameters, sqlcommenter, pool_name)
    _install_orm_listener()
    # Queries inside a request are observed in the histogram when the request's record closes
    # (context.observe_durations), so the per-query listener stays a few attribute reads and one append.
    query_seconds = metrics.QUERY_SECONDS
    slow_ms = slow_query_ms

    @event.listens_for(sync_engine, "before_cursor_execute", retval=True)
    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> Any:
        if context is not None:
            setattr(context, _START, time.perf_counter())
        if sqlcommenter:
            record = current()
            route = record.route_name() if record is not None else None
            if route:
                return statement + _comment(route), parameters
        return statement, parameters

    @event.listens_for(sync_engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started = getattr(context, _START, None)
        if started is None:
            return
        duration_ms = (time.perf_counter() - started) * 1000.0
        record = current()
        original = context.statement if context is not None and context.statement else statement
        if duration_ms >= slow_ms:
            route = record.route_name() if record is not None else None
            _log_slow(original, duration_ms, cursor, parameters, route, log_parameters)
        if record is None:  # outside any request or profile() block: observed here, with no route
            query_seconds.observe("", duration_ms / 1000.0)
            return
        fp = fingerprint(original)
        relationship = record.pending_relationship
        record.pending_relationship = None
        rows = cursor.rowcount if cursor is not None else -1
        record.queries.append(
            QueryEvent(fp, original, duration_ms, rows, relationship, parameters if log_parameters else None)
        )
        record.db_ms += duration_ms
        record.counts[fp] += 1
        if record.counts[fp] == record.threshold:
            record.sites[fp] = find_site()

    pool = sync_engine.pool
    checked_out = metrics.POOL_CHECKED_OUT.labels(pool_name)
    wait = metrics.POOL_WAIT_SECONDS.labels(pool_name)

    # SQLAlchemy also fires "checkin" for a connection whose checkout failed (connect refused, pre-ping
    # cancelled with its request): count down only what was counted up, or the gauge drifts below zero.
    @event.listens_for(pool, "checkout")
    def on_checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        record.info[_COUNTED] = True
        checked_out.inc()

    @event.listens_for(pool, "checkin")
    def on_checkin(dbapi_conn: Any, record: Any) -> None:
        if record.info.pop(_COUNTED, False):
            checked_out.dec()

    def time_checkouts(target: Any) -> None:
        # The pool has no "before checkout" event: wrap its public connect() to time the wait.
        original_connect = target.connect

        def timed_connect() -> Any:
            began = time.perf_counter()
            try:
                return original_connect()
            finally:
                wait.observe(time.perf_counter() - began)

        target.connect = timed_connect

    time_checkouts(pool)

    @event.listens_for(sync_engine, "engine_disposed")
    def on_dispose(engine: Any) -> None:
        time_checkouts(engine.pool)  # dispose() replaced the pool; listeners carried over, the wrapper not

    return config


def _log_slow(
    statement: str, duration_ms: float, cursor: Any, parameters: Any, route: str | None, log_parameters: bool
) -> None:
    metrics.SLOW_QUERIES.labels(route or "").inc()
    fields: dict[str, Any] = {
        "route": route,
        "fingerprint": fingerprint(statement),
        "statement": normalize(statement),
        "duration_ms": round(duration_ms, 3),
        "rows": cursor.rowcount if cursor is not None else None,
    }
    if log_parameters:
        fields["parameters"] = repr(parameters)
    log.warning("slow_query", **fields)
