"""The per-request record, held in a contextvar so concurrent requests never see each other's queries.

A record is opened by the ASGI middleware (one per HTTP request) or by ``profile()`` (tests, scripts, jobs).
Records nest: a request handled inside a ``profile()`` block (the pytest plugin around an httpx call) hands
its queries and findings up to the outer record when it closes.

A closed record accepts nothing: a task spawned by a request copies its context, so it still sees the record
after the response went out; the listeners check ``closed`` and leave it alone (issue 10 §3).

An open record is bounded too, whatever runs inside it (a batch job in ``profile()``, an N+1 over a million rows):
it keeps the first :data:`MAX_QUERIES_KEPT` statements, :data:`MAX_EAGER_KEPT` eager-load options and
:data:`MAX_DEPTHS_TRACKED` objects of a self-referential walk. Past the cap a statement is counted, not kept
(:class:`Overflow`): ``query_count``, ``db_ms``, ``counts`` and the duration histogram stay exact, N+1 detection
reads the kept part (and one located sample per shape that repeated only later), and the findings say so.

SQLAlchemy's async layer runs ORM code in a greenlet whose ``gr_context`` is the awaiting task's context, so
the listeners see the same contextvar as the request — the tests check this for every loading pattern.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pgpulse.profiler.sites import Site

# A kept statement costs ≈ 165 bytes (measured with tracemalloc: 3.3 MB for 20,000 plain SELECTs — the slotted
# event, its two floats, the list slot; the statement and fingerprint strings are shared with SQLAlchemy's and
# pgpulse.sql's caches), ≈ 250 for a lazy load (its LoadInfo), so 10,000 kept statements are 1.6-2.5 MB per
# record (more with log_parameters, which keeps each statement's values: not bounded by this count).
# N+1 detection needs far fewer: a shape is an N+1 from its 5th repeat (the default threshold) and the stack is
# walked only for its first 100 repeats, so an N+1 shows in the first few hundred statements of its loop; the
# dashboard shows 200 statements of a request. 10,000 leaves every real request whole (CitizenApp's worst,
# an N+1 page, runs 52) and only cuts a runaway one.
MAX_QUERIES_KEPT = 10_000
# One EagerUse per eager-load option per executed query with options (≈ 200 bytes each): unused-eager detection
# judges an option from its first run, so the first 10,000 are as good as all of them.
MAX_EAGER_KEPT = 10_000
# One entry per object loaded lazily in a self-referential walk (its InstanceState → level). A walk 10,000
# objects wide is already the finding; objects past the cap are not tracked (their children would count from
# level 2), the levels of those tracked stay right, and ``levels`` is the maximum over the kept lazy loads.
MAX_DEPTHS_TRACKED = 10_000

__all__ = [
    "MAX_DEPTHS_TRACKED",
    "MAX_EAGER_KEPT",
    "MAX_QUERIES_KEPT",
    "ConnectReason",
    "EagerUse",
    "LoadInfo",
    "LoadKind",
    "NPlusOne",
    "NewConnections",
    "Overflow",
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
    nested: bool = False  # handed up by a nested record, which judged it already: the parent does not again

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
class Overflow:
    """What a record knows of the statements it did not keep (past :data:`MAX_QUERIES_KEPT`): a few counters and
    one histogram's worth of buckets, whatever their number. None on the record until the cap is reached, so the
    listener's common path never touches it."""

    bounds: tuple[float, ...]  # the duration histogram's bucket bounds (seconds), +Inf last
    count: int = 0  # statements not kept (failed ones included)
    buckets: list[int] = field(default_factory=list)  # their durations, counted per histogram bucket
    seconds: float = 0.0  # and summed
    # (fingerprint, lazy relationship or None) — the shapes N+1 detection groups by — → successful runs not kept,
    # and their time (ms)
    shapes: dict[tuple[str, Any], int] = field(default_factory=dict)
    shape_ms: dict[tuple[str, Any], float] = field(default_factory=dict)
    # the first located run not kept of each shape that repeated (its line): detection finds an N+1 that began
    # only after the cap from it. One per shape, so bounded like ``Record.counts``.
    samples: dict[tuple[str, Any], QueryEvent] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)  # error class → failed statements not kept
    logged: bool = False

    def __post_init__(self) -> None:
        if not self.buckets:
            self.buckets = [0] * len(self.bounds)

    def add(self, duration_ms: float, error: str | None = None) -> None:
        """Count one statement that was not kept."""
        seconds = duration_ms / 1000.0
        self.count += 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.seconds += seconds
        if error is not None:
            self.failed[error] = self.failed.get(error, 0) + 1

    def absorb(self, other: Overflow) -> None:
        """Add a nested record's counted statements (its per-shape counts stay its own: judged already)."""
        self.count += other.count
        self.seconds += other.seconds
        for index, n in enumerate(other.buckets):
            self.buckets[index] += n
        for error, n in other.failed.items():
            self.failed[error] = self.failed.get(error, 0) + n


def overflow_of(record: Record) -> Overflow:
    """The record's overflow, made when its first statement past the cap arrives."""
    overflow = record.overflow
    if overflow is None:
        from pgpulse.profiler.metrics import QUERY_SECONDS

        overflow = record.overflow = Overflow(QUERY_SECONDS.bounds)
    return overflow


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
    # Set when the record kept only the first ``inspected`` of its ``total`` statements (MAX_QUERIES_KEPT): the
    # site, statement and fix come from those; ``count`` is the shape's exact total when one line ran it, and a
    # lower bound (``at_least``) when the kept part shows it from several lines.
    inspected: int | None = None
    total: int | None = None
    at_least: bool = False

    @property
    def kind(self) -> str:
        return "lazy_load" if self.relationship else "repeated_query"

    def describe(self) -> str:
        where = f" at {self.site}" if self.site and self.site.filename else ""
        times = f"{'at least ' if self.at_least else ''}{self.count} times"
        if self.relationship:
            if self.levels > 1:
                via = f" walked {self.levels} levels deep"
            else:
                via = f" (on objects loaded by {self.loaded_via})" if self.loaded_via else ""
            head = f"N+1: lazy load of {self.relationship}{via} ran {times}{where}"
        else:
            head = f"N+1: the same query ran {times}{where}"
        if self.inspected is not None and self.total is not None:
            head += f" ({self.inspected:,} of {self.total:,} queries inspected)"
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
    overflow: Overflow | None = None  # past MAX_QUERIES_KEPT: the statements counted, not kept
    eager_dropped: int = 0  # eager-load options past MAX_EAGER_KEPT, not judged

    @property
    def dropped(self) -> int:
        """Statements run but not kept in ``queries`` (past MAX_QUERIES_KEPT)."""
        return self.overflow.count if self.overflow is not None else 0

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
        """Every statement the record saw, kept or not (``queries`` holds the first MAX_QUERIES_KEPT)."""
        return len(self.queries) + self.dropped

    @property
    def elapsed_ms(self) -> float:
        """Wall time of the request (or block) so far, or in all once closed."""
        end = self.ended if self.ended is not None else time.perf_counter()
        return (end - self.started) * 1000.0

    @property
    def failed(self) -> list[QueryEvent]:
        """The failed statements kept (``failed_count`` counts those past the cap too)."""
        return [q for q in self.queries if q.error is not None]

    @property
    def failed_by_error(self) -> dict[str, int]:
        """Error class → failed statements, kept or not."""
        by_error: dict[str, int] = dict(self.overflow.failed) if self.overflow is not None else {}
        for query in self.failed:
            error = query.error or ""
            by_error[error] = by_error.get(error, 0) + 1
        return by_error

    @property
    def failed_count(self) -> int:
        return sum(self.failed_by_error.values())

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
    if record.overflow is not None:
        log_truncated(record)
    _current.reset(token)  # type: ignore[arg-type]
    parent = record.parent
    if parent is not None and not parent.closed:
        hand_up(record, parent)
        parent.db_ms += record.db_ms
        parent.findings.extend(record.findings)
        parent.unused.extend(record.unused)
        parent.connections.extend(record.connections)  # the findings go up; the counters stay the record's own
        parent.accessed |= record.accessed
    else:
        observe_durations(record)


def keep_query(record: Record, query: QueryEvent) -> None:
    """Append ``query`` to the record's list, or count it past the cap (failed statements, nested records)."""
    if len(record.queries) < MAX_QUERIES_KEPT:
        record.queries.append(query)
        return
    overflow_of(record).add(query.duration_ms, query.error)


def hand_up(record: Record, parent: Record) -> None:
    """A nested record's statements join its parent's: as many as the parent's cap leaves room for, the rest (and
    those the child did not keep either) counted in the parent's overflow, so the totals add up exactly. The
    shapes and samples stay the child's: its N+1s were detected already and go up as findings."""
    room = max(MAX_QUERIES_KEPT - len(parent.queries), 0)
    for query in record.queries:
        query.nested = True  # the child's N+1s went up as findings; grouped again they would be reported twice
    parent.queries.extend(record.queries[:room])
    rest = record.queries[room:]
    child = record.overflow
    if not rest and child is None:
        return
    overflow = overflow_of(parent)
    for query in rest:
        overflow.add(query.duration_ms, query.error)
    if child is not None:
        overflow.absorb(child)


def log_truncated(record: Record) -> None:
    """One line per record that overflowed, when it closes (the totals are known then)."""
    overflow = record.overflow
    if overflow is None or overflow.logged:
        return
    overflow.logged = True
    import structlog

    structlog.get_logger("pgpulse.profiler").warning(
        "record_truncated",
        route=record.route_name(),
        method=record.method,
        kept=len(record.queries),
        total=record.query_count,
    )


def observe_durations(record: Record) -> None:
    """Feed the query-duration histogram once per record, when it closes: off each query's path (the listener
    only appends a QueryEvent), and with the route known for every query, even those run before routing. The
    statements past the cap were counted into buckets as they ran: added here with the same labels."""
    from pgpulse.profiler.metrics import QUERY_SECONDS

    overflow = record.overflow
    if record.queries or (overflow is not None and overflow.count):
        from pgpulse.profiler.routes import UNMATCHED

        # A request that matched no route is one label, as in the middleware's metrics; a profile() block has none.
        route = record.route_name() or (UNMATCHED if record.scope is not None else "")
        method = record.method or ""
        if record.queries:
            QUERY_SECONDS.observe_many(route, [q.duration_ms / 1000.0 for q in record.queries], method)
        if overflow is not None and overflow.count:
            QUERY_SECONDS.observe_counted(route, overflow.buckets, overflow.seconds, method)


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
