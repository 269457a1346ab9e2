"""New database connections per request: an app that connects on every request (``NullPool``), or whose pool
keeps opening and closing connections (churn).

A new PostgreSQL connection is a TCP (or TLS) handshake, authentication, a new backend process and the driver's
set-up (asyncpg's type introspection, SQLAlchemy's dialect checks): ≈ 9 ms on this project's 2-core machines,
the time of ≈ 100 queries on an open connection, paid again by every request that opens one.

How it is measured, off the statement path: the engine's ``do_connect`` event fires just before the DBAPI
connect, the pool's ``connect`` event once the connection is made and set up (SQLAlchemy's own ``connect``
listeners, registered when the engine was created, run before ours); both fire only when a connection is
opened. The open record (the contextvar) gets a counter and a sum per engine; the pool's ``checkout`` event,
which the profiler listens to already, appends one boolean (did this checkout open the connection?) to the
engine's ring of its last :data:`CHURN_WINDOW` checkouts.

The rule, judged when the record closes, per engine the record opened connections on:

* **no pool**: the engine's pool is a ``NullPool`` (it closes every connection at checkin, so a request that
  queries always opens one): every such record is a finding. The log event is rate-limited, not the finding.
* **churn**: a real pool (``QueuePool``, ``AsyncAdaptedQueuePool``…) is a finding only when, over the engine's
  last :data:`CHURN_WINDOW` checkouts, at least :data:`CHURN_SHARE` opened a new connection, *and* the engine
  has opened more connections in its life than the pool can hold at once (``pool_size + max_overflow``).
  A pool that keeps its connections opens them while it fills up, then reuses them: after the warm-up well
  over 95 % of checkouts reuse one, and a warm-up, even a burst of concurrent first requests, opens at most
  ``pool_size + max_overflow`` connections, which the second condition excuses whatever the window shows. The
  window is judged only once it is full, so a process's first requests are never findings. A pool that churns
  opens one on most checkouts: ``pool_size`` below the worker's concurrent requests (the overflow connections
  are closed at checkin, and every burst opens them again), a ``pool_recycle`` shorter than the gap between
  requests, connections invalidated again and again. Why checkouts and not requests: the pool sees
  checkouts; knowing which requests used an engine would need work on every statement.

Bounded: per engine a ring of ``CHURN_WINDOW`` booleans and three integers; per record one counter and one sum
per engine it connected on.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy.pool import NullPool, Pool, QueuePool

from pgpulse.profiler.context import ConnectReason, NewConnections, Opened, Record

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["CHURN_SHARE", "CHURN_WINDOW", "PoolWatch", "count_connection", "detect_new_connections"]

CHURN_WINDOW = 100
CHURN_SHARE = 50  # of CHURN_WINDOW checkouts that opened a new connection

# SQLAlchemy's defaults, printed in the NullPool fix: a starting point, sized to the worker's concurrent requests
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10


class PoolWatch:
    """One instrumented engine's connection facts: what its listeners update and the rule reads."""

    __slots__ = ("__weakref__", "_engine", "_lock", "_ring", "config", "opened", "peak")

    def __init__(self, engine: Engine, config: Any) -> None:
        self._engine = weakref.ref(engine)
        self.config = config  # the engine's ProfilerConfig: its pool_name, as the latest instrument() call set it
        self._ring: deque[bool] = deque(maxlen=CHURN_WINDOW)  # per checkout: did it open the connection?
        self._lock = threading.Lock()  # WSGI apps check out from many threads
        self.opened = 0  # connections opened in the engine's life (all its pools: dispose() makes a new one)
        self.peak = 0  # the most connections checked out at once when one was opened

    @property
    def pool(self) -> Pool | None:
        engine = self._engine()
        return engine.pool if engine is not None else None

    def checked_out(self, new: bool) -> None:
        with self._lock:
            self._ring.append(new)

    def connected(self) -> None:
        """A connection was opened (the pool's ``connect`` event): its count, and how many were out at once."""
        pool = self.pool
        at_once = pool.checkedout() if isinstance(pool, QueuePool) else 0  # the new one counted already
        with self._lock:
            self.opened += 1
            self.peak = max(self.peak, at_once)

    def churn(self) -> tuple[int, int]:
        """(checkouts that opened a connection, checkouts) over the ring."""
        with self._lock:
            return self._ring.count(True), len(self._ring)


def count_connection(record: Record, watch: PoolWatch, ms: float) -> None:
    opened = record.opened
    if opened is None:
        opened = record.opened = {}
    tally = opened.get(watch)
    if tally is None:
        opened[watch] = Opened(1, ms)
    else:
        tally.count += 1
        tally.ms += ms


def detect_new_connections(record: Record) -> list[NewConnections]:
    """The record's findings (see the module docstring for the rule); a pure function of the record so far and
    its engines' state, so an exporter may call it before the record closes."""
    if not record.opened:
        return []
    found = []
    for watch, tally in record.opened.items():
        finding = _judge(watch, tally, record)
        if finding is not None:
            found.append(finding)
    return found


def _judge(watch: PoolWatch, tally: Opened, record: Record) -> NewConnections | None:
    pool = watch.pool
    if pool is None or tally.count == 0:
        return None
    engine = "create_async_engine" if pool._dialect.is_async else "create_engine"
    common = {
        "count": tally.count,
        "connect_ms": tally.ms,
        "request_ms": max(record.elapsed_ms, tally.ms),
        "pool": watch.config.pool_name,
        "pool_class": type(pool).__name__,
        "route": record.route_name(),
        "method": record.method,
    }
    if isinstance(pool, NullPool):
        return NewConnections(reason=ConnectReason.NO_POOL, fix=_no_pool_fix(engine, pool), **common)
    opened, window = watch.churn()
    if window < CHURN_WINDOW or opened < CHURN_SHARE:
        return None
    if isinstance(pool, QueuePool) and watch.opened <= pool.size() + max(pool._max_overflow, 0):
        return None  # never more than the pool holds at once: it filled up, it did not churn
    return NewConnections(
        reason=ConnectReason.CHURN, fix=_churn_fix(engine, pool, watch), churn=opened, window=window, **common
    )


def _no_pool_fix(engine: str, pool: Pool) -> str:
    driver = getattr(pool._dialect, "driver", "")  # a pool made outside create_engine has no real dialect
    bouncer = "PgBouncer in transaction mode between the processes and PostgreSQL"
    if driver == "asyncpg":
        bouncer += ' (asyncpg behind PgBouncer < 1.21: connect_args={"statement_cache_size": 0})'
    elif driver == "psycopg":
        bouncer += ' (psycopg behind PgBouncer < 1.21: connect_args={"prepare_threshold": None})'
    return (
        f"{engine}(url, pool_size={DEFAULT_POOL_SIZE}, max_overflow={DEFAULT_MAX_OVERFLOW}, pool_pre_ping=True) "
        f"instead of poolclass=NullPool (pool_size: the worker's concurrent requests); when many processes "
        f"connect, {bouncer}"
    )


def _churn_fix(engine: str, pool: Pool, watch: PoolWatch) -> str:
    if not isinstance(pool, QueuePool):
        return f"check pool_recycle and what invalidates the {type(pool).__name__}'s connections"
    size, overflow = pool.size(), pool._max_overflow
    wanted = max(watch.peak, size + 1)
    fix = (
        f"raise pool_size to cover the worker's concurrent requests: {engine}(url, pool_size={wanted}, "
        f"max_overflow={overflow}, pool_pre_ping=True) (pool_size is {size} now and {watch.peak} connections were "
        f"checked out at once; connections above pool_size are closed at checkin and opened again by the next burst)"
    )
    recycle = pool._recycle
    if recycle >= 0:
        fix += (
            f"; pool_recycle={recycle:g} closes each connection {recycle:g} s after it opened: raise it (1800) "
            f"unless something cuts idle connections sooner"
        )
    return fix
