"""The Sentry exporter with a real ``sentry_sdk``: a client whose transport keeps each envelope in memory, Sentry's
own FastAPI / Starlette / SQLAlchemy integrations opening the transaction and the ``db`` spans around CitizenApp.

What Sentry receives is read back from the envelopes exactly as they would go over the wire."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import Request
from sentry_sdk import integrations as sentry_integrations
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations import sqlalchemy as sentry_sqlalchemy
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.transport import Transport
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.pool import NullPool

import pgpulse.demo.loading
from pgpulse.db.urls import async_url
from pgpulse.demo.app import create_app
from pgpulse.demo.models import User
from pgpulse.errors import MissingExtraError
from pgpulse.profiler import Record, instrument, profile, uninstrument
from pgpulse.profiler.sentry import SPAN_OP, SentryExporter
from pgpulse.settings import Settings

LAZY_FIX = ".options(selectinload(User.posts).selectinload(Post.comments)) on the query that loads the User objects"
LAZY_LINE = "comments = await post.awaitable_attrs.comments"  # the line of load_lazy that runs the N+1


class MemoryTransport(Transport):
    """Keeps every envelope the client sends; nothing leaves the process."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == kind and item.payload.json is not None
        ]

    def wire(self) -> bytes:
        return b"".join(envelope.serialize() for envelope in self.envelopes)


def _reset_scopes() -> None:
    for scope in (sentry_sdk.get_current_scope(), sentry_sdk.get_isolation_scope(), sentry_sdk.get_global_scope()):
        scope.clear()
    sentry_sdk.get_global_scope().set_client(None)


def _remove_sentry_sqlalchemy_listeners() -> None:
    """Sentry's SQLAlchemy integration listens on the ``Engine`` class once per process and has no teardown;
    other test files count an engine's listeners (test_lifecycle), so take them off and let the next init
    install them again."""
    for name, fn in (
        ("before_cursor_execute", sentry_sqlalchemy._before_cursor_execute),
        ("after_cursor_execute", sentry_sqlalchemy._after_cursor_execute),
        ("handle_error", sentry_sqlalchemy._handle_error),
    ):
        if event.contains(Engine, name, fn):
            event.remove(Engine, name, fn)
    sentry_integrations._installed_integrations.discard(SqlalchemyIntegration.identifier)
    sentry_integrations._processed_integrations.discard(SqlalchemyIntegration.identifier)


@pytest.fixture
def sentry() -> Iterator[MemoryTransport]:
    """A real client, as an app would init it (tracing on), closed and unbound after the test so no other test
    sees Sentry initialised."""
    transport = MemoryTransport()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=transport,
        traces_sample_rate=1.0,
        auto_enabling_integrations=False,  # only the integrations under test, not asyncpg's duplicate db spans
        integrations=[StarletteIntegration(), FastApiIntegration(), SqlalchemyIntegration()],
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        _reset_scopes()
        _remove_sentry_sqlalchemy_listeners()


async def _requests(app: Any, *calls: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    responses = []
    async with app.router.lifespan_context(app), client:
        for method, path, kwargs in calls:
            responses.append(await client.request(method, path, **kwargs))
    return responses


def _at(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def _lazy_line() -> int:
    source = Path(pgpulse.demo.loading.__file__).read_text().splitlines()
    [lineno] = [i for i, line in enumerate(source, 1) if line.strip() == LAZY_LINE]
    return lineno


async def test_the_transaction_carries_the_query_count_and_each_n_plus_one_as_a_span(
    db: Any, sentry: MemoryTransport
) -> None:
    crumbs: list[dict[str, Any]] = []
    sentry_sdk.get_client().options["before_breadcrumb"] = lambda crumb, hint: crumbs.append(crumb) or crumb
    uid = db.seeded.showcase_user_id
    records: list[Record] = []
    app = create_app(db.url, Settings(), on_record=[records.append, SentryExporter()])
    lazy, selectin = await _requests(
        app,
        ("GET", f"/users/{uid}/posts", {"params": {"strategy": "lazy"}}),
        ("GET", f"/users/{uid}/posts", {"params": {"strategy": "selectin"}}),
    )
    assert lazy.status_code == selectin.status_code == 200
    sentry_sdk.flush()
    assert sentry.items("event") == []  # events are opt-in
    first, second = sentry.items("transaction")
    assert first["transaction"] == second["transaction"] == "/users/{user_id}/posts"

    data = first["contexts"]["trace"]["data"]
    assert data["pgpulse.query_count"] == 52 and data["pgpulse.n_plus_one_count"] == 1
    assert data["pgpulse.unused_eager_load_count"] == 0
    assert data["pgpulse.db_ms"] == round(records[0].db_ms, 3) > 0  # the profiler's own figure for the request
    assert first["tags"]["pgpulse.n_plus_one"] == "Post.comments"
    # Sentry's own N+1 detector works on these: one db span per statement, from its SQLAlchemy integration
    assert sum(span["op"] == "db" for span in first["spans"]) == 52
    [span] = [s for s in first["spans"] if s["op"] == SPAN_OP]
    where = f"{pgpulse.demo.loading.__file__}:{_lazy_line()} in load_lazy()"
    assert (
        span["description"]
        == f"N+1: lazy load of Post.comments (on objects loaded by User.posts) ran 50 times at {where}"
    )
    assert span["parent_span_id"] == first["contexts"]["trace"]["span_id"]  # a top-level row of the transaction
    found = span["data"]
    assert found["pgpulse.relationship"] == "Post.comments" and found["pgpulse.loaded_via"] == "User.posts"
    assert found["pgpulse.count"] == 50 and found["pgpulse.kind"] == "lazy_load"
    assert found["pgpulse.duration_ms"] == round(records[0].findings[0].total_ms, 3)
    assert found["pgpulse.fix"] == LAZY_FIX
    assert found["code.filepath"] == pgpulse.demo.loading.__file__
    assert found["code.lineno"] == _lazy_line() and found["code.function"] == "load_lazy"
    assert found["pgpulse.code"] == LAZY_LINE
    assert found["pgpulse.statement"].startswith("SELECT comments.") and "$1" in found["pgpulse.statement"]
    # a mark after the last query, inside the transaction: never in the middle of the run of repeated db spans
    # Sentry's detector counts, neither in time nor in the payload's order
    start, end = _at(span["start_timestamp"]), _at(span["timestamp"])
    last_query = max(_at(s["timestamp"]) for s in first["spans"] if s["op"] == "db")
    assert last_query <= start == end <= _at(first["timestamp"])
    assert first["spans"].index(span) > max(i for i, s in enumerate(first["spans"]) if s["op"] == "db")

    clean = second["contexts"]["trace"]["data"]
    assert clean["pgpulse.query_count"] == 3 and clean["pgpulse.n_plus_one_count"] == 0
    assert "pgpulse.n_plus_one" not in second.get("tags", {})
    assert not [s for s in second["spans"] if s["op"] == SPAN_OP]

    [crumb] = [c for c in crumbs if c.get("category") == "pgpulse"]
    assert crumb["level"] == "warning" and crumb["message"].startswith("N+1: lazy load of Post.comments")
    assert crumb["data"]["pgpulse.fix"] == LAZY_FIX and crumb["data"]["code.lineno"] == _lazy_line()


async def test_one_event_per_new_fingerprint_grouped_by_pgpulses_fingerprint(db: Any, sentry: MemoryTransport) -> None:
    uid = db.seeded.showcase_user_id
    app = create_app(db.url, Settings(), on_record=SentryExporter(events=True))
    lazy = ("GET", f"/users/{uid}/posts", {"params": {"strategy": "lazy"}})
    for response in await _requests(app, lazy, lazy):
        assert response.status_code == 200
    sentry_sdk.flush()
    assert len(sentry.items("transaction")) == 2  # both requests annotated ...
    # (Sentry's own db spans are back after the previous test's teardown took its listeners off)
    assert sum(s["op"] == "db" for s in sentry.items("transaction")[1]["spans"]) == 52
    [event] = sentry.items("event")  # ... one event: the second request's finding was seen already
    spans = [s for s in sentry.items("transaction")[0]["spans"] if s["op"] == SPAN_OP]
    fingerprint = spans[0]["data"]["pgpulse.fingerprint"]
    assert event["fingerprint"] == ["pgpulse.n_plus_one", fingerprint]
    assert event["level"] == "warning" and event["logger"] == "pgpulse.profiler"
    assert event["message"].splitlines()[0].startswith("N+1: lazy load of Post.comments")
    assert event["transaction"] == "/users/{user_id}/posts"
    assert event["contexts"]["pgpulse"]["pgpulse.fix"] == LAZY_FIX
    assert event["contexts"]["trace"]["trace_id"] == sentry.items("transaction")[0]["contexts"]["trace"]["trace_id"]
    [crumb] = [c for c in event["breadcrumbs"]["values"] if c["category"] == "pgpulse"]
    assert crumb["data"]["pgpulse.relationship"] == "Post.comments"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


COLUMNS = (("id",), ("name",), ("email",), ("created_at",), ("id", "name"))  # five shapes, five fingerprints


def _record_with_loops(db: Any, columns: tuple[tuple[str, ...], ...]) -> Any:
    """A record whose findings are one repeated-query N+1 per column (SELECT <column> FROM users … 5 times)."""
    with profile(threshold=5) as record, db.sync_engine.connect() as conn:
        for names in columns:
            for uid in range(1, 6):
                conn.execute(select(*(getattr(User, name) for name in names)).where(User.id == uid))
    return record


def _fingerprints(transport: MemoryTransport) -> list[str]:
    return [event["fingerprint"][1] for event in transport.items("event")]


def test_the_token_bucket_caps_a_burst_and_refills_over_the_minute(db: Any, sentry: MemoryTransport) -> None:
    record = _record_with_loops(db, COLUMNS)
    assert len({f.fingerprint for f in record.findings}) == 5
    clock = Clock()
    exporter = SentryExporter(events=True, max_events_per_minute=3, clock=clock)
    exporter(record)
    assert len(_fingerprints(sentry)) == 3  # the burst: three tokens
    exporter(record)
    assert len(_fingerprints(sentry)) == 3  # no token left, and the three sent are not sent again
    clock.now += 20.0  # 3 per minute: one token back every 20 s
    exporter(record)
    assert len(_fingerprints(sentry)) == 4  # a fingerprint the bucket turned away is sent once a token is back
    clock.now += 3600.0  # the bucket refills to its size, no more
    exporter(record)
    exporter(record)
    sent = _fingerprints(sentry)
    assert sorted(sent) == sorted(f.fingerprint for f in record.findings)  # each exactly once


def test_the_seen_set_is_bounded_and_forgets_the_oldest(db: Any, sentry: MemoryTransport) -> None:
    exporter = SentryExporter(events=True, max_events_per_minute=100, max_fingerprints=2)
    first = _record_with_loops(db, COLUMNS[:1])
    exporter(first)
    exporter(_record_with_loops(db, COLUMNS[1:3]))  # two more shapes push the first out of the LRU
    exporter(first)
    [fp] = {f.fingerprint for f in first.findings}
    assert _fingerprints(sentry).count(fp) == 2 and len(_fingerprints(sentry)) == 4


SECRET = "s3cr3t-Tok3n-4242"


async def test_no_query_parameter_reaches_sentry(db: Any, sentry: MemoryTransport) -> None:
    """A secret sent in the body becomes a bound parameter of a repeated query; the profiler keeps parameters
    (``log_parameters=True``) but neither the transaction, the span, the breadcrumb nor the event carries it."""
    app = create_app(db.url, Settings(log_parameters=True), on_record=SentryExporter(events=True))

    async def lookup(request: Request) -> dict[str, int]:
        token = (await request.json())["token"]
        async with request.app.state.read_sessionmaker() as session:
            for _ in range(6):
                await session.execute(text("SELECT count(*) FROM users WHERE email = :token"), {"token": token})
        return {"ok": 1}

    app.add_api_route("/lookup", lookup, methods=["POST"])
    [response] = await _requests(app, ("POST", "/lookup", {"json": {"token": SECRET}}))
    assert response.status_code == 200
    sentry_sdk.flush()
    [transaction] = sentry.items("transaction")
    [span] = [s for s in transaction["spans"] if s["op"] == SPAN_OP]
    assert span["data"]["pgpulse.count"] == 6 and span["data"]["pgpulse.kind"] == "repeated_query"
    assert span["data"]["pgpulse.statement"] == "SELECT count(*) FROM users WHERE email = $1"
    [event] = sentry.items("event")
    assert event["contexts"]["pgpulse"]["pgpulse.count"] == 6
    wire = sentry.wire()
    assert SECRET.encode() not in wire and json.dumps(SECRET).encode() not in wire


def test_without_a_sentry_client_the_hook_does_nothing(db: Any) -> None:
    record = _record_with_loops(db, COLUMNS[:1])
    exporter = SentryExporter(events=True)
    exporter(record)  # Sentry not initialised: nothing to annotate, no breadcrumb kept, no fingerprint remembered
    assert sentry_sdk.get_isolation_scope()._breadcrumbs == type(sentry_sdk.get_isolation_scope()._breadcrumbs)()
    transport = MemoryTransport()
    sentry_sdk.init(dsn="https://public@sentry.invalid/1", transport=transport, default_integrations=False)
    try:
        exporter(record)  # initialised now: this first sighting is sent
        sentry_sdk.flush()
        assert len(transport.items("event")) == 1
    finally:
        sentry_sdk.get_client().close()
        _reset_scopes()


def test_without_sentry_sdk_the_import_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # what find_spec reports when the package is absent
    monkeypatch.delitem(sys.modules, "pgpulse.profiler.sentry")
    with pytest.raises(MissingExtraError) as excinfo:
        importlib.import_module("pgpulse.profiler.sentry")
    assert str(excinfo.value) == "pgpulse.profiler.sentry needs the sentry extra: pip install 'pgpulse[sentry]'"


def test_an_unused_eager_load_is_counted_and_left_as_a_breadcrumb(db: Any, sentry: MemoryTransport) -> None:
    with profile() as record, Session(db.sync_engine) as session:
        stmt = select(User).where(User.id == db.seeded.showcase_user_id).options(selectinload(User.posts))
        session.scalars(stmt).one()  # the 50 posts are loaded and never read
    with sentry_sdk.start_transaction(name="nightly-job", op="task"):
        SentryExporter()(record)
        sentry_sdk.capture_message("the job failed later")  # an event of the same scope carries the breadcrumb
    sentry_sdk.flush()
    [transaction] = sentry.items("transaction")
    data = transaction["contexts"]["trace"]["data"]
    assert data["pgpulse.unused_eager_load_count"] == 1 and data["pgpulse.n_plus_one_count"] == 0
    assert "pgpulse.n_plus_one" not in transaction.get("tags", {})
    [event] = sentry.items("event")
    [crumb] = [c for c in event["breadcrumbs"]["values"] if c["category"] == "pgpulse"]
    assert crumb["data"]["pgpulse.option"] == "selectinload(User.posts)"
    assert crumb["data"]["pgpulse.kind"] == "unused_eager_load" and crumb["level"] == "warning"


def test_a_nullpool_engine_is_counted_and_left_as_a_breadcrumb(shop: Any, sentry: MemoryTransport) -> None:
    engine = create_engine(async_url(shop.url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    instrument(engine, pool_name="sentry-nullpool")
    try:
        with profile() as record, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        uninstrument(engine)
        engine.dispose()
    with sentry_sdk.start_transaction(name="nightly-job", op="task"):
        SentryExporter()(record)
        sentry_sdk.capture_message("the job failed later")
    sentry_sdk.flush()
    [transaction] = sentry.items("transaction")
    assert transaction["contexts"]["trace"]["data"]["pgpulse.new_connections"] == 1
    [event] = sentry.items("event")
    [crumb] = [c for c in event["breadcrumbs"]["values"] if c["category"] == "pgpulse"]
    [finding] = record.connections
    assert crumb["message"] == finding.describe() and crumb["level"] == "warning"
    assert crumb["data"] == {
        "pgpulse.kind": "new_connection_per_request",
        "pgpulse.count": 1,
        "pgpulse.connect_ms": round(finding.connect_ms, 3),
        "pgpulse.pool": "sentry-nullpool",
        "pgpulse.pool_class": "NullPool",
        "pgpulse.churn": None,
        "pgpulse.fix": finding.fix,
    }
