"""The per-request record, held in a contextvar so concurrent requests never see each other's queries.

A record is opened by the ASGI middleware (one per HTTP request) or by ``profile()`` (tests, scripts, jobs).
Records nest: a request handled inside a ``profile()`` block (the pytest plugin around an httpx call) hands
its queries and findings up to the outer record when it closes.

SQLAlchemy's async layer runs ORM code in a greenlet whose ``gr_context`` is the awaiting task's context, so
the listeners see the same contextvar as the request — the tests check this for every loading pattern.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class QueryEvent:
    fingerprint: str
    statement: str  # the SQL as sent, with placeholders ($1 / %(name)s): no parameter values
    duration_ms: float
    rows: int
    relationship: str | None = None  # "Post.comments" when this query was a relationship (lazy) load
    parameters: Any = None  # only kept when log_parameters is on


@dataclass(slots=True)
class Site:
    """Where a repeated query came from: the first application frame outside pgpulse and the libraries."""

    filename: str
    lineno: int
    function: str
    line: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno} in {self.function}()"


@dataclass(slots=True)
class NPlusOne:
    """A query shape repeated ``count`` times in one unit of work, with where it came from and the fix."""

    fingerprint: str
    statement: str
    count: int
    total_ms: float
    relationship: str | None
    loaded_via: str | None  # the relationship that loaded the parents, e.g. "User.posts" for Post.comments
    site: Site | None
    fix: str
    route: str | None = None

    @property
    def kind(self) -> str:
        return "lazy_load" if self.relationship else "repeated_query"

    def describe(self) -> str:
        where = f" at {self.site}" if self.site else ""
        if self.relationship:
            via = f" (on objects loaded by {self.loaded_via})" if self.loaded_via else ""
            head = f"N+1: lazy load of {self.relationship}{via} ran {self.count} times{where}"
        else:
            head = f"N+1: the same query ran {self.count} times{where}"
        code = f"\n  code:  {self.site.line}" if self.site and self.site.line else ""
        return f"{head}{code}\n  query: {self.statement}\n  fix:   {self.fix}"


@dataclass
class Record:
    """Everything the profiler learned about one request (or one ``profile()`` block)."""

    threshold: int = 5
    route: str | None = None
    method: str | None = None
    scope: MutableMapping[str, Any] | None = None  # the ASGI scope: the router fills in the matched route later
    queries: list[QueryEvent] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    sites: dict[str, Site | None] = field(default_factory=dict)
    loaded_by: dict[str, str] = field(default_factory=dict)  # class name → relationship that loaded it
    pending_relationship: str | None = None
    findings: list[NPlusOne] = field(default_factory=list)
    db_ms: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    parent: Record | None = None
    closed: bool = False

    @property
    def query_count(self) -> int:
        return len(self.queries)

    def route_name(self) -> str | None:
        if self.route is None and self.scope is not None:
            matched = self.scope.get("route")
            path = getattr(matched, "path", None)
            if isinstance(path, str):
                self.route = path
        return self.route


_current: ContextVar[Record | None] = ContextVar("pgpulse_record", default=None)


def current() -> Record | None:
    return _current.get()


def open_record(record: Record) -> object:
    record.parent = _current.get()
    return _current.set(record)


def close_record(record: Record, token: object) -> None:
    from pgpulse.profiler.nplusone import detect

    record.closed = True
    record.findings.extend(detect(record))
    _current.reset(token)  # type: ignore[arg-type]
    parent = record.parent
    if parent is not None and not parent.closed:
        parent.queries.extend(record.queries)
        parent.db_ms += record.db_ms
        parent.findings.extend(record.findings)
    else:
        observe_durations(record)


def observe_durations(record: Record) -> None:
    """Feed the query-duration histogram once per record, when it closes: off each query's path (the listener
    only appends a QueryEvent), and with the route known for every query, even those run before routing."""
    from pgpulse.profiler.metrics import QUERY_SECONDS

    if record.queries:
        QUERY_SECONDS.observe_many(record.route_name() or "", [q.duration_ms / 1000.0 for q in record.queries])


@contextmanager
def profile(threshold: int = 5, route: str | None = None) -> Iterator[Record]:
    """Record the queries run inside the block (sync or async code) and detect N+1 when it ends.

    ``record.findings`` is filled on exit; ``record.queries`` as the block runs.
    """
    record = Record(threshold=threshold, route=route)
    token = open_record(record)
    try:
        yield record
    finally:
        close_record(record, token)
