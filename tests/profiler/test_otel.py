"""OpenTelemetry: the request's profile on the server span that OpenTelemetry's own ASGI middleware opened, the
per-statement spans only where opentelemetry-instrumentation-sqlalchemy is absent, the traceparent in the SQL
comment as PostgreSQL sees it, and the spans reaching an OTLP/HTTP receiver on loopback.

Real parts only: CitizenApp on the seeded database, the OpenTelemetry SDK with injected providers (never the
global ones), ``opentelemetry-instrumentation-asgi``'s middleware around the app.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import selectinload
from sqlalchemy.pool import NullPool
from structlog.testing import capture_logs

from pgpulse.db.urls import async_url
from pgpulse.demo import loading
from pgpulse.demo.app import create_app
from pgpulse.demo.models import User
from pgpulse.profiler import PgPulseMiddleware, Record, instrument, profile, uninstrument
from pgpulse.profiler.otel import NEW_CONNECTIONS_EVENT, OpenTelemetryExporter
from pgpulse.profiler.unused import unused_shapes
from pgpulse.settings import Settings

ROUTE = "/users/{user_id}/posts"
LAZY_LINE = "comments = await post.awaitable_attrs.comments"  # the N+1 of CitizenApp's lazy strategy
FIX = ".options(selectinload(User.posts).selectinload(Post.comments)) on the query that loads the User objects"


class Telemetry:
    """An SDK tracer and meter provider that keep everything in memory, injected into every part under test."""

    def __init__(self, sampler: Any = None) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def exporter(self, **kw: Any) -> OpenTelemetryExporter:
        return OpenTelemetryExporter(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kw)

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.spans.get_finished_spans()

    def server_span(self) -> ReadableSpan:
        [server] = [s for s in self.finished() if s.kind is SpanKind.SERVER]
        return server

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@asynccontextmanager
async def traced_citizenapp(
    url: str, telemetry: Telemetry, hooks: Sequence[Any], *, app: FastAPI | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """CitizenApp (or ``app``) wrapped in OpenTelemetry's ASGI middleware: it opens the SERVER span around the
    profiler's middleware, as ``FastAPIInstrumentor`` or ``opentelemetry-instrument`` would."""
    app = app or create_app(url, Settings(), on_record=list(hooks))
    traced = OpenTelemetryMiddleware(
        app, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    transport = httpx.ASGITransport(app=traced, raise_app_exceptions=False)  # a 500 is a response here
    client = httpx.AsyncClient(transport=transport, base_url="http://app")
    async with app.router.lifespan_context(app), client:
        yield app, client


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _lazy_line_number() -> int:
    lines = Path(loading.__file__).read_text().splitlines()
    [number] = [i for i, line in enumerate(lines, 1) if line.strip() == LAZY_LINE]
    return number


async def test_lazy_route_puts_query_count_db_time_and_one_nplusone_event_on_the_server_span(db: Any) -> None:
    telemetry = Telemetry()
    records: list[Record] = []
    async with traced_citizenapp(db.url, telemetry, [telemetry.exporter(), records.append]) as (_, client):
        response = await client.get(f"/users/{db.seeded.showcase_user_id}/posts", params={"strategy": "lazy"})
    assert response.status_code == 200
    [record] = records
    server = telemetry.server_span()
    attributes = _attributes(server)
    # the span OpenTelemetry's ASGI middleware opened (and ended as the response went out), not one of ours
    assert server.name == f"GET /users/{db.seeded.showcase_user_id}/posts" and attributes["http.status_code"] == 200
    assert attributes["pgpulse.db.query_count"] == 52  # 1 user + 1 posts + 50 lazy comment loads
    assert attributes["pgpulse.db.failed_count"] == 0
    assert attributes["pgpulse.nplusone.count"] == 1
    assert attributes["pgpulse.unused_eager_load.count"] == 0
    assert attributes["pgpulse.db.duration_ms"] == round(record.db_ms, 3) and record.db_ms > 0
    [event] = server.events
    assert event.name == "pgpulse.n_plus_one"
    found = dict(event.attributes or {})
    statement = found.pop("db.statement")
    assert found.pop("pgpulse.fingerprint") == record.findings[0].fingerprint
    assert 0 < found.pop("pgpulse.total_ms") <= attributes["pgpulse.db.duration_ms"]
    assert found == {
        "pgpulse.relationship": "Post.comments",
        "pgpulse.loaded_via": "User.posts",
        "pgpulse.count": 50,
        "pgpulse.fix": FIX,
        "code.file.path": loading.__file__,
        "code.line.number": _lazy_line_number(),
        "code.function.name": "load_lazy",
        "pgpulse.code": LAZY_LINE,
    }
    # the statement's shape: a placeholder where each post's id went, never a value
    assert statement.startswith("SELECT comments.") and "FROM comments WHERE $1" in statement
    # no statement spans unless asked: the server span and the ASGI middleware's own send spans only
    assert {s.kind for s in telemetry.finished()} == {SpanKind.SERVER, SpanKind.INTERNAL}
    [queries] = telemetry.metric_points("pgpulse.request.queries")
    assert (queries.count, queries.sum) == (1, 52)
    assert dict(queries.attributes) == {"http.route": ROUTE, "http.request.method": "GET"}
    [findings] = telemetry.metric_points("pgpulse.nplusone.findings")
    assert findings.value == 1 and findings.attributes["pgpulse.relationship"] == "Post.comments"


async def test_selectin_route_has_three_queries_and_no_event(db: Any) -> None:
    telemetry = Telemetry()
    async with traced_citizenapp(db.url, telemetry, [telemetry.exporter()]) as (_, client):
        response = await client.get(f"/users/{db.seeded.showcase_user_id}/posts", params={"strategy": "selectin"})
    assert response.status_code == 200
    server = telemetry.server_span()
    attributes = _attributes(server)
    assert attributes["pgpulse.db.query_count"] == 3
    assert attributes["pgpulse.nplusone.count"] == 0 and attributes["pgpulse.unused_eager_load.count"] == 0
    assert list(server.events) == []
    assert telemetry.metric_points("pgpulse.nplusone.findings") == []


async def test_a_request_that_is_not_sampled_gets_no_span_and_no_error(db: Any) -> None:
    telemetry = Telemetry(sampler=ALWAYS_OFF)
    with capture_logs() as logs:
        async with traced_citizenapp(db.url, telemetry, [telemetry.exporter(statement_spans=True)]) as (_, client):
            response = await client.get(f"/users/{db.seeded.showcase_user_id}/posts", params={"strategy": "lazy"})
    assert response.status_code == 200
    assert telemetry.finished() == ()
    assert [e for e in logs if e["event"] == "on_record_hook_failed"] == []
    [queries] = telemetry.metric_points("pgpulse.request.queries")  # metrics do not depend on sampling
    assert queries.sum == 52


async def test_statement_spans_are_children_of_the_server_span_with_the_statement_timing(db: Any) -> None:
    telemetry = Telemetry()
    records: list[Record] = []
    exporter = telemetry.exporter(statement_spans=True)
    async with traced_citizenapp(db.url, telemetry, [exporter, records.append]) as (_, client):
        response = await client.get(f"/users/{db.seeded.showcase_user_id}/posts", params={"strategy": "selectin"})
    assert response.status_code == 200
    [record] = records
    server = telemetry.server_span()
    statements = sorted((s for s in telemetry.finished() if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(statements) == 3
    assert server.start_time is not None and server.end_time is not None
    previous_end = server.start_time
    for span, query in zip(statements, record.queries, strict=True):
        assert span.parent is not None and span.parent.span_id == server.context.span_id
        assert span.context.trace_id == server.context.trace_id
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "pgpulse.profiler"
        assert span.name == "SELECT"
        attributes = _attributes(span)
        assert attributes["db.system"] == "postgresql" and attributes["db.operation"] == "SELECT"
        assert attributes["db.statement"].startswith("SELECT ")
        assert span.start_time is not None and span.end_time is not None
        # the statement's own timing, placed in order inside the request (one connection: no overlap)
        assert abs((span.end_time - span.start_time) / 1e6 - query.duration_ms) < 0.01
        assert previous_end <= span.start_time and span.end_time <= server.end_time
        previous_end = span.end_time
    # the user by a placeholder (never its id), then the selectin batches of User.posts and Post.comments
    texts = [_attributes(s)["db.statement"] for s in statements]
    assert "FROM users WHERE users.id = $1" in texts[0] and f"= {db.seeded.showcase_user_id}" not in texts[0]
    assert "FROM posts WHERE posts.user_id IN ($1" in texts[1]
    assert "FROM comments WHERE comments.post_id IN (… 50 values …)" in texts[2]
    assert [_attributes(s)["db.response.returned_rows"] for s in statements[1:]] == [50, 500]


def _small_app(engine: Any, telemetry: Telemetry) -> FastAPI:
    app = FastAPI()

    @app.get("/names")
    async def names() -> list[str]:
        async with AsyncSession(engine) as session:
            stmt = select(User).options(selectinload(User.posts)).order_by(User.id).limit(3)
            users = (await session.scalars(stmt)).all()  # UNUSED-POSTS
            return [user.name for user in users]  # User.posts is never read

    @app.get("/boom")
    async def boom() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        raise RuntimeError("the handler failed after one statement")

    app.add_middleware(PgPulseMiddleware, on_record=telemetry.exporter())
    return app


async def test_an_unused_eager_load_is_one_event_with_the_option_the_line_and_the_fix(db: Any) -> None:
    telemetry = Telemetry()
    unused_shapes.clear()  # whatever ran before: this shape is located only from its second run on
    async with traced_citizenapp(db.url, telemetry, [], app=_small_app(db.async_engine, telemetry)) as (_, client):
        assert (await client.get("/names")).status_code == 200
        first = telemetry.server_span()
        telemetry.spans.clear()
        assert (await client.get("/names")).status_code == 200
        second = telemetry.server_span()
    for server in (first, second):
        attributes = _attributes(server)
        assert attributes["pgpulse.db.query_count"] == 2  # the users, then one selectin batch of their posts
        assert (attributes["pgpulse.unused_eager_load.count"], attributes["pgpulse.nplusone.count"]) == (1, 0)
    [unlocated], [located] = first.events, second.events
    expected = {
        "pgpulse.option": "selectinload(User.posts)",
        "pgpulse.relationship": "User.posts",
        "pgpulse.fix": "remove selectinload(User.posts) from the query "
        "(or use noload(User.posts) / load_only() if only columns are read)",
    }
    assert unlocated.name == located.name == "pgpulse.unused_eager_load"
    found = dict(unlocated.attributes or {})
    assert found.pop("db.statement").startswith("SELECT users.id, users.name, users.email") and found == expected
    found = dict(located.attributes or {})
    found.pop("db.statement")
    line = [i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1) if text.endswith("# UNUSED-POSTS")]
    assert found == {
        **expected,
        "code.file.path": __file__,
        "code.line.number": line[0],
        "code.function.name": "names",
        "pgpulse.code": "users = (await session.scalars(stmt)).all()  # UNUSED-POSTS",
    }


async def test_a_handler_that_raises_still_gets_its_profile_on_the_server_span(db: Any) -> None:
    """No response body passes the profiler (the error page is sent further out), so the exporter runs when the
    record closes — before OpenTelemetry's middleware ends the span with the error."""
    telemetry = Telemetry()
    async with traced_citizenapp(db.url, telemetry, [], app=_small_app(db.async_engine, telemetry)) as (_, client):
        assert (await client.get("/boom")).status_code == 500
    server = telemetry.server_span()
    assert _attributes(server)["pgpulse.db.query_count"] == 1
    assert _attributes(server)["pgpulse.db.failed_count"] == 0 and _attributes(server)["http.status_code"] == 500


@contextmanager
def sqlalchemy_instrumented(engine: Any, telemetry: Telemetry) -> Iterator[None]:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    # The instrumentation declares sqlalchemy < 2.1; pgpulse runs on 2.1, where its listeners work unchanged.
    instrumentor.instrument(
        engine=engine.sync_engine,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        skip_dep_check=True,
    )
    try:
        yield
    finally:
        instrumentor.uninstrument()


async def test_statement_spans_are_left_to_the_sqlalchemy_instrumentation_when_it_traces_the_engine(db: Any) -> None:
    telemetry = Telemetry()
    app = create_app(db.url, Settings(), on_record=[telemetry.exporter(statement_spans=True)])
    async with traced_citizenapp(db.url, telemetry, [], app=app) as (_, client):
        with sqlalchemy_instrumented(app.state.engine, telemetry):
            response = await client.get(f"/users/{db.seeded.showcase_user_id}/posts", params={"strategy": "selectin"})
    assert response.status_code == 200
    statements = [s for s in telemetry.finished() if s.kind is SpanKind.CLIENT]
    scopes = [s.instrumentation_scope.name if s.instrumentation_scope else None for s in statements]
    # one span per statement, all from the instrumentation (its "connect" span besides), none from pgpulse
    assert scopes.count("opentelemetry.instrumentation.sqlalchemy") == len(scopes)
    assert sorted(s.name.split()[0] for s in statements if s.name != "connect") == ["SELECT"] * 3
    assert _attributes(telemetry.server_span())["pgpulse.db.query_count"] == 3


def _wait_app(engine: Any, telemetry: Telemetry) -> FastAPI:
    """One route whose statement waits on an advisory lock the test holds: it stays in pg_stat_activity while
    the test looks, with no sleep on either side."""
    app = FastAPI()

    @app.get("/wait")
    async def wait() -> dict[str, bool]:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 4242})
        return {"ok": True}

    app.add_middleware(PgPulseMiddleware, on_record=telemetry.exporter())
    return app


async def _poll(conn: asyncpg.Connection, sql: str, timeout: float = 20.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await conn.fetchval(sql)
        if value is not None:
            return str(value)
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing came back from {sql!r} within {timeout} s")


async def test_traceparent_in_the_sql_comment_joins_pg_stat_activity_to_the_trace(db: Any) -> None:
    telemetry = Telemetry()
    engine = create_async_engine(async_url(db.url))
    instrument(engine, sqlcommenter=True, sqlcommenter_traceparent=True)
    observer = await asyncpg.connect(db.url)
    try:
        await observer.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        app = _wait_app(engine, telemetry)
        async with traced_citizenapp(db.url, telemetry, [], app=app) as (_, client):
            await observer.execute("SELECT pg_advisory_lock(4242)")
            request = asyncio.create_task(client.get("/wait"))
            running = await _poll(
                observer,
                "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%xact_lock%'",
            )
            await observer.execute("SELECT pg_advisory_unlock(4242)")
            assert (await request).status_code == 200
            first = telemetry.server_span()
            telemetry.spans.clear()
            assert (await client.get("/wait")).status_code == 200
            second = telemetry.server_span()
        rows = await observer.fetch(
            "SELECT calls, query FROM pg_stat_statements WHERE query LIKE 'SELECT pg_advisory_xact_lock%' "
            "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await observer.close()
        uninstrument(engine)
        await engine.dispose()
    flags = int(first.context.trace_flags)
    assert flags & 1  # sampled (the SDK also sets W3C level 2's "random trace id" bit, 0x02)
    parent = f"00-{first.context.trace_id:032x}-{first.context.span_id:016x}-{flags:02x}"
    assert running == f"SELECT pg_advisory_xact_lock($1) /*route='%2Fwait',traceparent='{parent}'*/"
    assert second.context.trace_id != first.context.trace_id
    # queryid ignores comments: two traces, one pg_stat_statements entry (its text is the first one seen)
    assert [(r["calls"], r["query"]) for r in rows] == [(2, running)]


async def test_traceparent_is_the_current_spans_and_absent_outside_a_valid_span(db: Any) -> None:
    """``current_query()`` returns the text exactly as PostgreSQL received it, comment included."""
    telemetry = Telemetry()
    tracer = telemetry.tracer_provider.get_tracer("test")
    engine = create_async_engine(async_url(db.url))
    instrument(engine, sqlcommenter=True, sqlcommenter_traceparent=True)
    seen: list[str] = []
    try:
        async with engine.connect() as conn:
            for traced in (True, False, True):
                with profile(route="/job"), tracer.start_as_current_span("job") if traced else nullcontext():
                    seen.append(str((await conn.execute(text("SELECT current_query()"))).scalar_one()))
    finally:
        uninstrument(engine)
        await engine.dispose()
    first, second = sorted(telemetry.finished(), key=lambda s: s.start_time or 0)
    expected = [
        f"SELECT current_query() /*route='%2Fjob',traceparent='00-{span.context.trace_id:032x}-"
        f"{span.context.span_id:016x}-{int(span.context.trace_flags):02x}'*/"
        for span in (first, second)
    ]
    assert seen == [expected[0], "SELECT current_query() /*route='%2Fjob'*/", expected[1]]


def test_traceparent_needs_the_sqlcommenter_comment() -> None:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never connects
    with pytest.raises(ValueError, match="pass sqlcommenter=True too"):
        instrument(engine, sqlcommenter_traceparent=True)


class _OtlpReceiver(BaseHTTPRequestHandler):
    """The OTLP/HTTP trace endpoint of a collector: protobuf ExportTraceServiceRequest in, empty response out."""

    received: list[Any]

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/traces" or self.headers["Content-Type"] != "application/x-protobuf":
            self.send_error(404)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.received.append(request)  # type: ignore[attr-defined]
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _value(any_value: Any) -> Any:
    return getattr(any_value, any_value.WhichOneof("value"))


async def test_otlp_http_exporter_delivers_the_profile_to_a_receiver_on_loopback(db: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    telemetry = Telemetry()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    try:
        async with traced_citizenapp(db.url, telemetry, [telemetry.exporter()]) as (_, client):
            response = await client.get(f"/users/{db.seeded.showcase_user_id}/posts", params={"strategy": "lazy"})
        assert response.status_code == 200
        assert telemetry.tracer_provider.force_flush(10_000)
    finally:
        telemetry.tracer_provider.shutdown()
        server.shutdown()
        server.server_close()
    spans = [
        span
        for request in server.received  # type: ignore[attr-defined]
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    [wired] = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    assert wired.span_id == telemetry.server_span().context.span_id.to_bytes(8, "big")
    attributes = {a.key: _value(a.value) for a in wired.attributes}
    assert attributes["pgpulse.db.query_count"] == 52 and attributes["pgpulse.nplusone.count"] == 1
    [event] = wired.events
    found = {a.key: _value(a.value) for a in event.attributes}
    assert event.name == "pgpulse.n_plus_one"
    assert (found["pgpulse.relationship"], found["pgpulse.count"], found["pgpulse.fix"]) == ("Post.comments", 50, FIX)


BLOCK_OTEL = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def _without_opentelemetry(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_OTEL + code], capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin"}
    )


def test_without_the_otel_extra_each_entry_point_says_what_to_install_in_one_line() -> None:
    done = _without_opentelemetry(
        "from pgpulse.errors import MissingExtraError\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "from pgpulse.profiler import instrument\n"
        "engine = create_async_engine('postgresql+asyncpg://nobody@127.0.0.1:1/none')\n"
        "instrument(engine, sqlcommenter=True)\n"  # the core profiler and its sqlcommenter need no OpenTelemetry
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "for attempt in ('import pgpulse.profiler.otel', "
        "'instrument(engine, sqlcommenter=True, sqlcommenter_traceparent=True)'):\n"
        "    try:\n"
        "        exec(attempt)\n"
        "    except MissingExtraError as exc:\n"
        "        print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "the OpenTelemetry exporter (pgpulse.profiler.otel) needs the otel extra: pip install 'pgpulse[otel]'",
        "sqlcommenter_traceparent=True needs the otel extra: pip install 'pgpulse[otel]'",
    ]


async def test_a_nullpool_engine_is_an_event_on_the_server_span(shop: Any) -> None:
    telemetry = Telemetry()
    engine = create_async_engine(async_url(shop.url), poolclass=NullPool)
    instrument(engine, pool_name="otel-nullpool")
    records: list[Record] = []
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {}

    app.add_middleware(PgPulseMiddleware, on_record=[telemetry.exporter(), records.append])
    try:
        async with traced_citizenapp(shop.url, telemetry, [], app=app) as (_, client):
            assert (await client.get("/ping")).status_code == 200
    finally:
        uninstrument(engine)
        await engine.dispose()
    server = telemetry.server_span()
    assert _attributes(server)["pgpulse.db.new_connections"] == 1
    [event] = [e for e in server.events if e.name == NEW_CONNECTIONS_EVENT]
    [finding] = records[0].connections
    assert dict(event.attributes or {}) == {
        "pgpulse.count": 1,
        "pgpulse.connect_ms": round(finding.connect_ms, 3),
        "pgpulse.pool": "otel-nullpool",
        "pgpulse.pool_class": "NullPool",
        "pgpulse.reason": "no_pool",
        "pgpulse.fix": finding.fix,
    }
