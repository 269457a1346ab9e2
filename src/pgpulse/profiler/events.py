"""SQLAlchemy listeners: the profiler's only contact with the application's queries.

``instrument(engine)`` is idempotent per engine (Sentry's way: a lock, a registry; installing twice never
doubles the listeners, so no query is counted twice) and ``uninstrument(engine)`` removes every listener it
registered (OpenTelemetry's way: each one is recorded as it is added). Calling ``instrument`` again on an
instrumented engine updates its configuration — the one source every record of that engine honours.

Hot-path budget (measured in ``pgpulse.bench.profiler_overhead``): a contextvar read, two ``perf_counter()``
calls, a cached fingerprint lookup, one execution-option lookup, a dict increment, a ``len()`` comparison with
the record's cap and a list append. No string formatting, no stack walk, no logging unless a threshold trips
(slow query, a repeated shape). Past the cap (``context.MAX_QUERIES_KEPT``) a statement takes ``_overflow``
instead of the append: a histogram bucket and a per-shape counter, no event kept.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from pgpulse.profiler import metrics, orm
from pgpulse.profiler.connections import PoolWatch, count_connection
from pgpulse.profiler.context import (
    MAX_QUERIES_KEPT,
    LoadInfo,
    LoadKind,
    QueryEvent,
    Record,
    _current,
    keep_query,
    overflow_of,
)
from pgpulse.profiler.sites import find_site
from pgpulse.profiler.statements import shape
from pgpulse.profiler.unused import unused_shapes
from pgpulse.sql import fingerprint

log = structlog.get_logger("pgpulse.profiler")
_START = "_pgpulse_started"
_COUNTED = "pgpulse_checked_out"
_CONNECTING = "pgpulse_connecting"  # perf_counter() when the DBAPI connect began (do_connect → connect)
_NEW = "pgpulse_new"  # the connection was opened for the checkout that follows
_LOAD = orm.LOAD_OPTION
_NO_OPTIONS: dict[str, Any] = {}


@dataclass
class ProfilerConfig:
    """One engine's profiler settings; records of requests that use the engine take their threshold here
    unless a ``profile(threshold=…)`` block or the middleware is given one explicitly."""

    threshold: int = 5
    slow_query_ms: float = 200.0
    log_parameters: bool = False
    sqlcommenter: bool = False
    pool_name: str = "default"
    traceparent: bool = False  # sqlcommenter's comment also carries the current span's W3C traceparent


@dataclass
class _Installation:
    """What ``instrument`` did to one engine, recorded so that ``uninstrument`` can undo all of it."""

    config: ProfilerConfig
    listeners: list[tuple[Any, str, Callable[..., Any]]] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)

    def listen(self, target: Any, name: str, fn: Callable[..., Any], **kw: Any) -> None:
        event.listen(target, name, fn, **kw)
        self.listeners.append((target, name, fn))


_lock = threading.Lock()
_installed: weakref.WeakKeyDictionary[Engine, _Installation] = weakref.WeakKeyDictionary()


MAX_LOCATED = 100


# A request's statements share one route and one traceparent: built once per request. An lru_cache bounded by
# count is enough here (unlike pgpulse.sql's memos of statement text): a route is a template of the app's own
# routes (path values become placeholders, an unmatched request is "<unmatched>") and a traceparent is 55 chars.
@lru_cache(maxsize=256)
def _comment(route: str | None, traceparent: str | None) -> str:
    """sqlcommenter's format: ``key='url-encoded value'`` pairs sorted by key, in one trailing comment."""
    tags = []
    if route:
        tags.append(f"route='{quote(route, safe='')}'")
    if traceparent:
        tags.append(f"traceparent='{quote(traceparent, safe='')}'")
    return f" /*{','.join(tags)}*/" if tags else ""


def _no_traceparent() -> str | None:
    return None


# Replaced by pgpulse.profiler.traceparent.current_traceparent the first time an engine asks for it, so the
# listeners of an app that never does import no OpenTelemetry.
_traceparent: Callable[[], str | None] = _no_traceparent


def _sync(engine: Engine | AsyncEngine) -> Engine:
    return engine.sync_engine if isinstance(engine, AsyncEngine) else engine


def config_of(engine: Engine | AsyncEngine) -> ProfilerConfig | None:
    installation = _installed.get(_sync(engine))
    return installation.config if installation is not None else None


def instrument(
    engine: Engine | AsyncEngine,
    *,
    threshold: int = 5,
    slow_query_ms: float = 200.0,
    log_parameters: bool = False,
    sqlcommenter: bool = False,
    pool_name: str = "default",
    sqlcommenter_traceparent: bool = False,
) -> ProfilerConfig:
    """Attach the profiler to ``engine`` (sync or async) and return its config. A second call on the same
    engine adds no listener; it updates the config in place (so the latest explicit settings win).

    ``sqlcommenter`` appends ``/*route='/users/{user_id}/posts'*/`` to each statement so server logs and
    ``pg_stat_statements.query`` show which endpoint sent it. PostgreSQL computes ``queryid`` without
    comments, so grouping by queryid is unchanged, but the text kept for a group is the first route's;
    and every distinct comment is a distinct prepared statement in asyncpg's cache. Off by default.

    ``sqlcommenter_traceparent`` (with ``sqlcommenter``; needs ``pgpulse[otel]``) adds the W3C ``traceparent``
    of the current OpenTelemetry span: ``/*route='…',traceparent='00-…-…-01'*/``, so pg_stat_activity and the
    server log join to the trace. queryid still ignores it (one pg_stat_statements entry per shape), but the
    text is new on every request: asyncpg prepares each statement again (one more round trip per statement).
    """
    if threshold < 2:
        raise ValueError(f"threshold must be at least 2 (a statement that runs once is no N+1), not {threshold}")
    if sqlcommenter_traceparent:
        if not sqlcommenter:
            raise ValueError("sqlcommenter_traceparent=True adds to sqlcommenter's comment: pass sqlcommenter=True too")
        _load_traceparent()
    sync_engine = _sync(engine)
    with _lock:
        installation = _installed.get(sync_engine)
        if installation is not None:
            config = installation.config
            config.threshold, config.slow_query_ms, config.log_parameters = threshold, slow_query_ms, log_parameters
            config.sqlcommenter, config.pool_name = sqlcommenter, pool_name
            config.traceparent = sqlcommenter_traceparent
            return config
        config = ProfilerConfig(
            threshold, slow_query_ms, log_parameters, sqlcommenter, pool_name, sqlcommenter_traceparent
        )
        installation = _Installation(config)
        _install(sync_engine, installation)
        _installed[sync_engine] = installation
        return config


def _load_traceparent() -> None:
    global _traceparent
    from pgpulse.profiler.traceparent import current_traceparent  # raises MissingExtraError without [otel]

    _traceparent = current_traceparent


def instrumented_engines() -> list[Engine]:
    """The (sync) engines ``instrument`` is attached to now."""
    with _lock:
        return list(_installed.keys())


def uninstrument(engine: Engine | AsyncEngine) -> bool:
    """Remove every listener ``instrument`` registered on ``engine``; False when it was not instrumented."""
    sync_engine = _sync(engine)
    with _lock:
        installation = _installed.pop(sync_engine, None)
        if installation is None:
            return False
        for target, name, fn in installation.listeners:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        for undo in installation.undo:
            undo()
        orm.uninstall()
        return True


def _install(sync_engine: Engine, installation: _Installation) -> None:
    orm.install()
    before, after, on_error = _statement_listeners(installation.config)
    installation.listen(sync_engine, "before_cursor_execute", before, retval=True)
    installation.listen(sync_engine, "after_cursor_execute", after)
    installation.listen(sync_engine, "handle_error", on_error)
    _watch_pool(sync_engine, installation)


Listener = Callable[..., Any]


def _statement_listeners(config: ProfilerConfig) -> tuple[Listener, Listener, Listener]:
    """The three statement listeners (before, after, on error), closures over ``config`` and the few globals
    the hot path reads, bound to locals once here so each query pays no attribute lookups for them."""
    # Queries inside a request are observed in the histogram when the request's record closes
    # (context.observe_durations), so the per-query listener stays a few attribute reads and one append.
    query_seconds = metrics.QUERY_SECONDS
    current = _current.get
    clock = time.perf_counter
    lazy = LoadKind.LAZY
    batch = LoadKind.BATCH
    max_kept = MAX_QUERIES_KEPT

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> Any:
        if context is not None:
            setattr(context, _START, clock())
        if config.sqlcommenter:
            record = current()
            route = record.route_name() if record is not None and not record.closed else None
            comment = _comment(route, _traceparent() if config.traceparent else None)
            if comment:
                return statement + comment, parameters
        return statement, parameters

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started = getattr(context, _START, None)
        if started is None:
            return
        duration_ms = (clock() - started) * 1000.0
        record = current()
        original = context.statement or statement
        if duration_ms >= config.slow_query_ms:
            _log_slow(original, duration_ms, cursor, parameters, record, config.log_parameters)
        if record is None or record.closed:  # outside any request, or a task that outlived its request
            query_seconds.observe("", duration_ms / 1000.0)
            return
        if record.threshold is None:
            record.threshold = config.threshold
        fp = fingerprint(original)
        load: LoadInfo | None = getattr(context, "execution_options", _NO_OPTIONS).get(_LOAD)
        rows = cursor.rowcount if cursor is not None else -1
        site = None
        if load is not None and load.kind is batch:  # an eager loader's batch: never an N+1, whatever its count
            record.eager_rows[load.prop] = record.eager_rows.get(load.prop, 0) + max(rows, 0)
        else:
            # the shape alone for a plain statement (no tuple to build on the common path); with the lazy-loaded
            # relationship otherwise — nplusone.count_key is the same rule
            key: Any = fp if load is None else (fp, load.prop if load.kind is lazy else None)
            counts = record.counts
            runs = counts.get(key, 0) + 1
            counts[key] = runs
            threshold = record.threshold
            if threshold <= runs <= threshold + MAX_LOCATED:
                # An N+1 by now: where from (Prosopite's rule: same shape, same call site). Walking costs tens of
                # µs on a fresh stack (CPython materialises each frame object), so only past the threshold, and
                # only for the first MAX_LOCATED repeats; the rest join the first located site.
                site = find_site(2)
            if load is not None and load.eager:
                # Located only once the shape has been an unused eager load (the threshold that trips here).
                eager_site = find_site(2) if fp in unused_shapes else None
                for use in load.eager:
                    use.statement, use.fingerprint = original, fp
                    use.rows, use.site = use.rows + max(rows, 0), eager_site
        queries = record.queries
        if len(queries) < max_kept:
            queries.append(
                QueryEvent(
                    fp,
                    original,
                    duration_ms,
                    rows,
                    load,
                    parameters if config.log_parameters else None,
                    site,
                    None,
                    started,
                )
            )
        else:
            _overflow(
                record, fp, original, duration_ms, rows, load, parameters if config.log_parameters else None, site
            )
        record.db_ms += duration_ms

    def on_error(exception_context: Any) -> None:
        # Failed statements (statement_timeout, lock_timeout, errors) would vanish without this: the cursor
        # listener only sees statements that succeeded.
        context = exception_context.execution_context
        statement = exception_context.statement
        started = getattr(context, _START, None) if context is not None else None
        duration_ms = (clock() - started) * 1000.0 if started is not None else 0.0
        error = error_class(exception_context.original_exception)
        record = current()
        if statement:
            log.warning(
                "query_failed",
                route=record.route_name() if record is not None and not record.closed else None,
                method=record.method if record is not None else None,
                error=error,
                fingerprint=fingerprint(statement),
                statement=shape(statement),
                duration_ms=round(duration_ms, 3),
            )
        if record is None or record.closed or not statement:
            return
        load = getattr(context, "execution_options", _NO_OPTIONS).get(_LOAD) if context is not None else None
        failed = QueryEvent(fingerprint(statement), statement, duration_ms, -1, load, None, None, error, started or 0.0)
        keep_query(record, failed)  # the same cap as the others
        record.db_ms += duration_ms

    return before, after, on_error


def _overflow(
    record: Record,
    fp: str,
    statement: str,
    duration_ms: float,
    rows: int,
    load: LoadInfo | None,
    parameters: Any,
    site: Any,
) -> None:
    """A statement past the record's cap: counted for the histogram and, per shape, for N+1 detection; the first
    located run of a repeated shape is kept as that shape's sample (its line), once per shape."""
    overflow = overflow_of(record)
    overflow.add(duration_ms)
    if load is not None and load.kind is LoadKind.BATCH:
        return
    key = (fp, load.prop if load is not None and load.kind is LoadKind.LAZY else None)
    shapes, shape_ms = overflow.shapes, overflow.shape_ms
    shapes[key] = shapes.get(key, 0) + 1
    shape_ms[key] = shape_ms.get(key, 0.0) + duration_ms
    if site is not None and key not in overflow.samples:
        overflow.samples[key] = QueryEvent(fp, statement, duration_ms, rows, load, parameters, site)


def _watch_pool(sync_engine: Engine, installation: _Installation) -> None:
    """Pool metrics: connections checked out (a gauge), the wait for one (a histogram) and new connections (a
    counter), per pool name; and each new connection on the open record (``pgpulse.profiler.connections``)."""
    config = installation.config
    pool = sync_engine.pool
    checked_out = metrics.POOL_CHECKED_OUT.labels(config.pool_name)
    wait = metrics.POOL_WAIT_SECONDS.labels(config.pool_name)
    new_connections = metrics.NEW_CONNECTIONS.labels(config.pool_name)
    watch = PoolWatch(sync_engine, config)
    clock = time.perf_counter

    # SQLAlchemy also fires "checkin" for a connection whose checkout failed (connect refused, pre-ping
    # cancelled with its request): count down only what was counted up, or the gauge drifts below zero.
    def on_checkout(dbapi_conn: Any, connection_record: Any, proxy: Any) -> None:
        info = connection_record.info
        info[_COUNTED] = True
        checked_out.inc()
        watch.checked_out(info.pop(_NEW, False))

    def on_checkin(dbapi_conn: Any, connection_record: Any) -> None:
        if connection_record.info.pop(_COUNTED, False):
            checked_out.dec()

    # A new connection: only when one is opened, never on a statement's path. do_connect fires just before the
    # DBAPI connect, the pool's connect once it is made and SQLAlchemy's own connect listeners have set it up.
    def on_do_connect(dialect: Any, connection_record: Any, cargs: Any, cparams: Any) -> None:
        if connection_record is not None:
            connection_record.info[_CONNECTING] = clock()

    def on_connect(dbapi_conn: Any, connection_record: Any) -> None:
        info = connection_record.info
        began = info.pop(_CONNECTING, None)
        ms = (clock() - began) * 1000.0 if began is not None else 0.0
        info[_NEW] = True
        new_connections.inc()
        watch.connected()
        record = _current.get()
        if record is not None and not record.closed:
            count_connection(record, watch, ms)

    installation.listen(pool, "checkout", on_checkout)
    installation.listen(pool, "checkin", on_checkin)
    installation.listen(sync_engine, "do_connect", on_do_connect)
    installation.listen(pool, "connect", on_connect)

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
        installation.undo.append(lambda: target.__dict__.pop("connect", None))

    time_checkouts(pool)

    def on_dispose(engine: Any) -> None:
        time_checkouts(engine.pool)  # dispose() replaced the pool; listeners carried over, the wrapper not

    installation.listen(sync_engine, "engine_disposed", on_dispose)


def error_class(exc: BaseException) -> str:
    """The driver's own exception class (``QueryCanceledError``), not the DBAPI adapter's wrapper (SQLAlchemy's
    asyncpg adapter raises a generic ``Error`` chained to asyncpg's exception)."""
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "sqlstate"):
        return type(cause).__name__
    return type(exc).__name__


def _log_slow(
    statement: str, duration_ms: float, cursor: Any, parameters: Any, record: Any, log_parameters: bool
) -> None:
    route = record.route_name() if record is not None and not record.closed else None
    method = record.method if record is not None else None
    metrics.SLOW_QUERIES.labels(route or "", method or "").inc()
    fields: dict[str, Any] = {
        "route": route,
        "method": method,
        "fingerprint": fingerprint(statement),
        "statement": shape(statement),
        "duration_ms": round(duration_ms, 3),
        "rows": cursor.rowcount if cursor is not None else None,
    }
    if log_parameters:
        fields["parameters"] = repr(parameters)
    log.warning("slow_query", **fields)
