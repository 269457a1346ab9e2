"""The per-request record, held in a contextvar so concurrent requests never see each other's queries.

A record is opened by the ASGI middleware (one per HTTP request) or by ``profile()`` (tests, scripts, jobs).
Records nest: a request handled inside a ``profile()`` block (the pytest plugin around an httpx call) hands
its queries and findings up to the outer record when it closes.

A closed record accepts nothing: a task spawned by a request copies its context, so it still sees the record
after the response went out; the listeners check ``closed`` and leave it alone (issue 10 §3).

SQLAlchemy's async layer runs ORM code in a greenlet whose ``gr_context`` is the awaiting task's context, so
the listeners see the same contextvar as the request — the tests check this for every loading pattern.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pgpulse.profiler.sites import Site

__all__ = [
    "ConnectReason",
    "EagerUse",
    "LoadInfo",
    "LoadKind",
    "NPlusOne",
    "NewConnections",
    "QueryEvent",
    "Record",
    "Site",
    "UnusedEagerLoad",
    "current",
    "profile",
]


class LoadKind(StrEnum):
    LAZY = "lazy"  # a relationship loaded on attribute access, once per parent object: an N+1 when repeated
    BATCH = "batch"  # one batch of an eager loader (selectinload chunk, subqueryload, recursion level): never
    QUERY = "query"  # an application query that carries eager-load options


@dataclass(slots=True)
class EagerUse:
    """One eager-load option (``selectinload(User.items)``) on one executed query, for the unused-eager check.

    ``chain`` holds the relationship properties from the query's entity to the loaded one; ``strategies`` is
    SQLAlchemy's name for the loader of each level (``selectin``, ``joined``, ``subquery``, ``lazy``…)."""

    chain: tuple[Any, ...]
    strategies: tuple[str, ...]
    site: Site | None
    statement: str = ""
    fingerprint: str = ""
    rows: int = 0


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """What the ORM told us about one execution; travels with it in its execution options, so concurrent
    statements of one request (``asyncio.gather`` over two sessions) never take each other's relationship."""

    kind: LoadKind
    prop: Any = None  # the RelationshipProperty being loaded (LAZY / BATCH)
    parent_chain: tuple[Any, ...] = ()  # relationships that loaded the parent object, outermost first (LAZY)
    eager: tuple[EagerUse, ...] = ()  # options carried by an application query (QUERY)
    depth: int = 1  # self-referential lazy loads: the level of the parent object in the walk (root = 1)


@dataclass(slots=True)
class QueryEvent:
    fingerprint: str
    statement: str  # the SQL as sent, with placeholders ($1 / %(name)s): no parameter values
    duration_ms: float
    rows: int
    load: LoadInfo | None = None
    parameters: Any = None  # only kept when log_parameters is on
    site: Site | None = None  # only looked up for a shape that repeated
    error: str | None = None  # the exception class of a failed statement (timeout, error)
    started: float = 0.0  # perf_counter() when it was sent: exporters place its span on the trace's time line

    @property
    def relationship(self) -> str | None:
        """``Post.comments`` when this statement was a lazy load of that relationship."""
        load = self.load
        if load is None or load.kind is not LoadKind.LAZY:
            return None
        return relationship_name(load.prop)


def relationship_name(prop: Any) -> str:
    return f"{prop.parent.class_.__name__}.{prop.key}"


@dataclass(slots=True)
class NPlusOne:
    """A query shape repeated ``count`` times from one call site in one unit of work, with the fix."""

    fingerprint: str
    statement: str  # normalized: no literal, long IN lists folded to their shape
    count: int
    total_ms: float
    relationship: str | None
    loaded_via: str | None  # the relationship that loaded the parents, e.g. "User.posts" for Post.comments
    site: Site | None
    fix: str
    route: str | None = None
    method: str | None = None
    during_serialization: str | None = None  # "list_items() with response_model=list[ItemOut]"
    levels: int = 1  # self-referential relationships: how many levels deep the lazy loads went

    @property
    def kind(self) -> str:
        return "lazy_load" if self.relationship else "repeated_query"

    def describe(self) -> str:
        where = f" at {self.site}" if self.site and self.site.filename else ""
        if self.relationship:
            if self.levels > 1:
                via = f" walked {self.levels} levels deep"
            else:
                via = f" (on objects loaded by {self.loaded_via})" if self.loaded_via else ""
            head = f"N+1: lazy load of {self.relationship}{via} ran {self.count} times{where}"
        else:
            head = f"N+1: the same query ran {self.count} times{where}"
        lines = [head]
        if self.during_serialization:
            lines.append(
                f"  when:  during FastAPI's response serialization, after {self.during_serialization} returned"
            )
        if self.site and self.site.line:
            lines.append(f"  code:  {self.site.line}")
        lines.append(f"  query: {self.statement}")
        lines.append(f"  fix:   {self.fix}")
        return "\n".join(lines)


@dataclass(slots=True)
class UnusedEagerLoad:
    """An eager-load option whose relationship nothing read during the request (nplusone / Bullet)."""

    option: str  # "selectinload(User.items).selectinload(Item.tags)"
    relationship: str  # the first relationship of the chain that was never read
    statement: str  # the query that carried it, normalized
    site: Site | None
    fix: str
    route: str | None = None
    method: str | None = None

    kind = "unused_eager_load"

    def describe(self) -> str:
        where = f" at {self.site}" if self.site and self.site.filename else ""
        lines = [f"Unused eager load: {self.option}{where} loaded {self.relationship}, which nothing read"]
        if self.site is None:
            lines.append("  where: the query's line is looked up the next time it runs (no stack walk until then)")
        if self.site and self.site.line:
            lines.append(f"  code:  {self.site.line}")
        lines.append(f"  query: {self.statement}")
        lines.append(f"  fix:   {self.fix}")
        return "\n".join(lines)


class ConnectReason(StrEnum):
    NO_POOL = "no_pool"  # the engine's pool never reuses a connection (NullPool)
    CHURN = "churn"  # a real pool that keeps opening connections (pool_size too small, pool_recycle too short)


@dataclass(slots=True)
class NewConnections:
    """New database connections one request opened on one engine, when that engine connects per request
    (``NullPool``) or its pool churns; the rule is in :mod:`pgpulse.profiler.connections`."""

    count: int
    connect_ms: float  # time spent opening them (DBAPI connect and the dialect's set-up), ms
    request_ms: float  # the request's (or block's) wall time, ms
    pool: str  # the pool name given to instrument()
    pool_class: str  # "NullPool", "AsyncAdaptedQueuePool"
    reason: ConnectReason
    fix: str
    churn: int | None = None  # CHURN: how many of the engine's last CHURN_WINDOW checkouts opened a connection
    window: int | None = None  # CHURN: that window's length
    route: str | None = None
    method: str | None = None

    @property
    def kind(self) -> str:
        return "new_connection_per_request" if self.reason is ConnectReason.NO_POOL else "connection_churn"

    def describe(self) -> str:
        plural = "s" if self.count != 1 else ""
        numbers = (
            f"{self.count} new connection{plural}, {self.connect_ms:.1f} ms of the request's "
            f"{self.request_ms:.1f} ms spent connecting"
        )
        if self.reason is ConnectReason.NO_POOL:
            head = f"New connection per request: {numbers} (pool {self.pool!r}: {self.pool_class} reuses none)"
        else:
            head = (
                f"Connection churn: {numbers} (pool {self.pool!r}: {self.pool_class}, {self.churn} of its last "
                f"{self.window} checkouts opened a new connection)"
            )
        return f"{head}\n  fix:   {self.fix}"


@dataclass(slots=True)
class Opened:
    """New connections a record opened on one engine: a counter and a sum, whatever the request does."""

    count: int = 0
    ms: float = 0.0


@dataclass(eq=False)
class Record:
    """Everything the profiler learned about one request (or one ``profile()`` block).

    ``threshold`` None means "the instrumented engine's": the first statement fills it in from the config
    ``instrument()`` was given, so the middleware never overrides it with a default of its own."""

    threshold: int | None = None
    route: str | None = None
    method: str | None = None
    scope: MutableMapping[str, Any] | None = None  # the ASGI scope: the router fills in the matched route later
    path: str | None = None  # the path as the client sent it, root_path included (routers rewrite the scope's)
    queries: list[QueryEvent] = field(default_factory=list)
    counts: dict[Any, int] = field(default_factory=dict)  # fingerprint, or (fingerprint, lazy relationship) → runs
    eager: list[EagerUse] = field(default_factory=list)
    eager_rows: dict[Any, int] = field(default_factory=dict)  # relationship → rows its eager batches loaded
    accessed: set[Any] = field(default_factory=set)  # relationships read (only those some query eager-loads)
    depths: dict[Any, int] = field(default_factory=dict)  # object state → level, for self-referential walks
    findings: list[NPlusOne] = field(default_factory=list)
    unused: list[UnusedEagerLoad] = field(default_factory=list)
    db_ms: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None  # perf_counter() when the record closed (the response was sent)
    parent: Record | None = None
    closed: bool = False
    # engine (its connections.PoolWatch) → connections opened while this record was the open one; None until one
    # is: one entry per instrumented engine at most
    opened: dict[Any, Opened] | None = None
    connections: list[NewConnections] = field(default_factory=list)

    @property
    def new_connections(self) -> int:
        """New DBAPI connections opened while this record was open (its own, not a nested record's)."""
        return sum(o.count for o in self.opened.values()) if self.opened else 0

    @property
    def connect_ms(self) -> float:
        """Time spent opening them, ms."""
        return sum(o.ms for o in self.opened.values()) if self.opened else 0.0

    @property
    def query_count(self) -> int:
        return len(self.queries)

    @property
    def elapsed_ms(self) -> float:
        """Wall time of the request (or block) so far, or in all once closed."""
        end = self.ended if self.ended is not None else time.perf_counter()
        return (end - self.started) * 1000.0

    @property
    def failed(self) -> list[QueryEvent]:
        return [q for q in self.queries if q.error is not None]

    def route_name(self) -> str | None:
        if self.route is None and self.scope is not None and "route" in self.scope:
            from pgpulse.profiler.routes import route_template

            self.route = route_template(self.scope, self.path)
        return self.route


_current: ContextVar[Record | None] = ContextVar("pgpulse_record", default=None)


def current() -> Record | None:
    """The open record of this request / ``profile()`` block (None outside one, or once it closed)."""
    record = _current.get()
    return None if record is None or record.closed else record


def open_record(record: Record) -> Token[Record | None]:
    record.parent = _current.get()
    return _current.set(record)


def close_record(record: Record, token: object) -> None:
    from pgpulse.profiler.connections import detect_new_connections
    from pgpulse.profiler.nplusone import detect
    from pgpulse.profiler.unused import detect_unused

    record.ended = time.perf_counter()
    record.closed = True  # from here on the listeners leave it alone, whatever task still holds it
    record.findings.extend(detect(record))
    record.unused.extend(detect_unused(record))
    if record.opened:
        record.connections.extend(detect_new_connections(record))
    _current.reset(token)  # type: ignore[arg-type]
    parent = record.parent
    if parent is not None and not parent.closed:
        parent.queries.extend(record.queries)
        parent.db_ms += record.db_ms
        parent.findings.extend(record.findings)
        parent.unused.extend(record.unused)
        parent.connections.extend(record.connections)  # the findings go up; the counters stay the record's own
        parent.accessed |= record.accessed
    else:
        observe_durations(record)


def observe_durations(record: Record) -> None:
    """Feed the query-duration histogram once per record, when it closes: off each query's path (the listener
    only appends a QueryEvent), and with the route known for every query, even those run before routing."""
    from pgpulse.profiler.metrics import QUERY_SECONDS

    if record.queries:
        from pgpulse.profiler.routes import UNMATCHED

        # A request that matched no route is one label, as in the middleware's metrics; a profile() block has none.
        route = record.route_name() or (UNMATCHED if record.scope is not None else "")
        QUERY_SECONDS.observe_many(route, [q.duration_ms / 1000.0 for q in record.queries], record.method or "")


@contextmanager
def profile(threshold: int | None = None, route: str | None = None) -> Iterator[Record]:
    """Record the queries run inside the block (sync or async code) and detect N+1 when it ends.

    ``threshold`` None: the instrumented engine's. ``record.findings`` / ``record.unused`` are filled on exit;
    ``record.queries`` as the block runs.
    """
    record = Record(threshold=threshold, route=route)
    token = open_record(record)
    try:
        yield record
    finally:
        close_record(record, token)
