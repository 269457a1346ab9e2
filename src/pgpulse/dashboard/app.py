"""The dashboard as an ASGI app: :func:`app` builds it, ``pgpulse dashboard`` serves it, a user may mount it.

GET routes only (no page changes anything, so there is nothing to protect with a CSRF token); every response
carries a Content-Security-Policy that allows nothing but this app's own stylesheet, so even markup that slipped
past Jinja2's autoescape could not run. The database sessions are read-only with statement and lock timeouts.

Mounted in a user's app the dashboard has no way to see their dependencies, so it asks for an ``auth`` callable
(``request -> bool``, sync or async) and calls it on every request; production mode refuses to build without
one unless ``allow_unauthenticated=True`` says that the caller protects the mount some other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from pgpulse.dashboard.advice_source import AdviceSource
from pgpulse.dashboard.doctor_source import DoctorSource
from pgpulse.dashboard.history_source import HistorySource
from pgpulse.dashboard.request_store import RequestHistory
from pgpulse.dashboard.requests import DASHBOARD_SCOPE_KEY, RequestRing
from pgpulse.db.engine import libpq_url
from pgpulse.doctor.check import Options as PoolSizing
from pgpulse.errors import UserError
from pgpulse.history.targets import default_name
from pgpulse.sql import redact_url

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent

SESSION_SETTINGS = {
    "default_transaction_read_only": "on",
    "statement_timeout": "5s",
    "lock_timeout": "500ms",
    "idle_in_transaction_session_timeout": "30s",
    "application_name": "pgpulse-dashboard",
}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Auth = Callable[[Request], bool | Awaitable[bool]]


MISSING_EXTRA = "pgpulse dashboard needs the dashboard extra: pip install 'pgpulse[dashboard]'"


class DashboardError(UserError):
    """The dashboard cannot be built as asked; ``str()`` says what to do."""


def load_jinja() -> Any:
    """The jinja2 module, or :class:`DashboardError` with the one line that says how to get it."""
    try:
        import jinja2
    except ImportError:
        raise DashboardError(MISSING_EXTRA) from None
    return jinja2


@dataclass
class State:
    """What every page needs: the pools (opened on first use: a mounted app's lifespan never runs), the
    sources, the template environment."""

    database_url: str
    store_url: str | None
    target: str | None
    env: jinja2.Environment
    doctor: DoctorSource
    advice: AdviceSource
    requests_ring: RequestRing | None = None
    request_history: RequestHistory | None = None  # the ring's summaries written to the store
    _pool: asyncpg.Pool | None = None
    _store_pool: asyncpg.Pool | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def database_label(self) -> str:
        return redact_url(self.database_url)

    async def pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                self._pool = await _open_pool(self.database_url)
            return self._pool

    async def history(self) -> HistorySource | None:
        if self.store_url is None:
            return None
        async with self._lock:
            if self._store_pool is None:
                self._store_pool = await _open_pool(self.store_url)
        return HistorySource(self._store_pool, self.database_url, self.target)

    async def close(self) -> None:
        await self.advice.close()
        if self.request_history is not None:
            await asyncio.to_thread(self.request_history.close)
        for pool in (self._pool, self._store_pool):
            if pool is not None:
                await pool.close()
        self._pool = self._store_pool = None


async def _init_session(conn: asyncpg.Connection) -> None:
    # Keep the dashboard's own catalog queries out of pg_stat_statements where the role may say so.
    with contextlib.suppress(asyncpg.PostgresError):
        await conn.execute("SET pg_stat_statements.track = 'none'")


async def _open_pool(url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        libpq_url(url), min_size=1, max_size=4, server_settings=SESSION_SETTINGS, init=_init_session, timeout=10
    )
    assert pool is not None
    return pool


class Dashboard:
    """Ask ``auth`` before anything else, refuse any method but GET/HEAD, add the security headers."""

    def __init__(self, inner: Starlette, auth: Auth | None, state: State) -> None:
        self.inner = inner
        self.auth = auth
        self.state = state

    async def close(self) -> None:
        """Close the dashboard's connection pools. Standalone, uvicorn's lifespan does it; mounted, Starlette
        never runs a sub-app's lifespan, so call this from your app's own shutdown."""
        await self.state.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        # Mounted in a profiled app, the profiler's record holds this same scope: the ring skips our own pages.
        scope[DASHBOARD_SCOPE_KEY] = True
        if scope["method"] not in ("GET", "HEAD"):
            await PlainTextResponse("read-only: GET only", 405, headers={"allow": "GET, HEAD"})(scope, receive, send)
            return
        if self.auth is not None:
            verdict = self.auth(Request(scope, receive))
            allowed = await verdict if inspect.isawaitable(verdict) else verdict
            if not allowed:
                await PlainTextResponse("forbidden", 403)(scope, receive, send)
                return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.inner(scope, receive, send_with_headers)


def app(
    database_url: str,
    store_url: str | None = None,
    *,
    requests_ring: RequestRing | None = None,
    production: bool = True,
    auth: Auth | None = None,
    allow_unauthenticated: bool = False,
    target: str | None = None,
    doctor_ttl: float = 60.0,
    pools: PoolSizing | None = None,
    advice_ttl: float = 600.0,
    advice_budget: float = 15.0,
) -> Dashboard:
    """The dashboard for ``database_url`` (history from ``store_url``'s ``target``, by default the target named
    after the database's host:port/name as ``pgpulse history`` names it).

    ``pools`` (``pgpulse.doctor.check.Options(app_workers=, pool_size=, max_overflow=)``) lets the doctor judge
    whether the application's pools fit under max_connections (Overview and Connections). ``requests_ring`` (a
    :class:`~pgpulse.dashboard.requests.RequestRing` the profiler feeds) adds the Requests page; with a
    ``store_url`` too, the ring's summaries are also kept in the store (30 days, at most 100,000 per target).
    The advisor's verified indexes (query page, Indexes page; HypoPG needed) are cached ``advice_ttl`` seconds
    and each run is cut off after ``advice_budget`` seconds. In production mode an ``auth`` callable (or
    ``allow_unauthenticated=True``) is required. A URL that cannot be parsed raises
    :class:`pgpulse.db.urls.DatabaseURLError` here (its message shows the URL redacted)."""
    if production and auth is None and not allow_unauthenticated:
        raise DashboardError(
            "pgpulse.dashboard.app() in production mode needs auth=<callable(request) -> bool> "
            "(or allow_unauthenticated=True if the mount is protected some other way)"
        )
    for url in (database_url, store_url):  # a URL that cannot work fails here, not in every page's traceback
        if url is not None:
            libpq_url(url)  # DatabaseURLError (a UserError): its message shows the URL redacted
    jinja = load_jinja()
    from pgpulse.dashboard import views
    from pgpulse.dashboard.format import FILTERS

    env = jinja.Environment(
        loader=jinja.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every page shows text from the catalog and the workload: escape all of it
        undefined=jinja.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    state = State(
        database_url,
        store_url,
        target,
        env,
        DoctorSource(database_url, doctor_ttl, pools),
        AdviceSource(database_url, advice_ttl, advice_budget),
        requests_ring,
    )
    if store_url is not None and requests_ring is not None:
        state.request_history = RequestHistory(store_url, target or default_name(database_url))
        requests_ring.subscribe(state.request_history.add)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        yield
        await state.close()

    routes = [
        Route("/", views.overview, name="overview"),
        Route("/queries", views.queries, name="queries"),
        Route("/queries/{queryid}", views.query, name="query"),
        Route("/queries/{queryid}/advice", views.query_advice, name="query_advice"),
        Route("/indexes", views.indexes, name="indexes"),
        Route("/tables", views.tables, name="tables"),
        Route("/connections", views.connections, name="connections"),
        Route("/requests", views.requests, name="requests"),
        Route("/requests/{request_id}", views.request_detail, name="request"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    inner = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: views.server_error})
    inner.state.dashboard = state
    return Dashboard(inner, auth, state)


def response_for(state: State, request: Request, template: str, **context: Any) -> Response:
    from starlette.responses import HTMLResponse

    # Links are paths under the mount point: our router knows our route names, the mount prefix is root_path
    # (Starlette's request.url_for asks the outermost router, which does not know them when we are mounted).
    router: Router = request.app.router
    prefix = str(request.scope.get("root_path", "")).rstrip("/")

    def url_for(name: str, /, **params: Any) -> str:
        return prefix + str(router.url_path_for(name, **params))

    page = state.env.get_template(template).render(
        url_for=url_for,
        database=state.database_label,
        profiler=state.requests_ring is not None,
        active=template.removesuffix(".html"),
        **context,
    )
    return HTMLResponse(page)
