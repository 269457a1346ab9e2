"""One handler per page: read the rows (queries.py, the sources), shape them, render the template.

Text shown from the workload or pg_stat_activity goes through :func:`pgpulse.sql.redact_sql` first, so a
literal typed into an ad-hoc query (a password, an e-mail) never reaches a page; pg_stat_statements' text is
already normalized, and is redacted too for the utility statements it keeps verbatim.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from pgpulse.dashboard import queries as q
from pgpulse.dashboard.advice_source import QueryAdvice, WorkloadAdvice
from pgpulse.dashboard.app import State, response_for
from pgpulse.dashboard.explain import ExplainError, PlanNode, generic_plan
from pgpulse.dashboard.history_source import Series
from pgpulse.dashboard.request_store import StoredRoute, stored_routes
from pgpulse.dashboard.requests import RequestRing
from pgpulse.dashboard.svg import line_chart, sparkline
from pgpulse.doctor.runner import ConnectError
from pgpulse.sql import redact_sql, redact_text

LIST_SIZE = 20


def _state(request: Request) -> State:
    state: State = request.app.state.dashboard
    return state


async def _history_or_none(state: State) -> Any:
    try:
        return await state.history()
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None


async def overview(request: Request) -> Response:
    state = _state(request)
    pool = await state.pool()
    async with pool.acquire() as conn:
        headline = await conn.fetchrow(q.HEADLINE_SQL)
        schema = await q.pgss_schema(conn)
        top = await q.top_queries(conn, schema, 1) if schema else []
    error = None
    try:
        findings = await state.doctor.findings()
    except ConnectError as exc:
        findings, error = None, redact_text(str(exc))
    return response_for(
        state,
        request,
        "overview.html",
        headline=headline,
        top=[_query_row(r) for r in top],
        findings=findings,
        doctor_error=error,
    )


def _query_row(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "queryid": int(r["queryid"]),
        "text": redact_sql(r["query"]),
        "calls": r["calls"],
        "total_ms": r["total_exec_time"],
        "mean_ms": r["mean_exec_time"],
        "rows": r["rows"],
        "share": (r["share"] or 0) / 100 if "share" in r.keys() else None,  # noqa: SIM118 (asyncpg Record)
    }


async def queries(request: Request) -> Response:
    state = _state(request)
    pool = await state.pool()
    async with pool.acquire() as conn:
        schema = await q.pgss_schema(conn)
        rows = await q.top_queries(conn, schema) if schema else []
    items = [_query_row(r) for r in rows]
    history = await _history_or_none(state)
    series: dict[int, Series] = {}
    if history is not None and items:
        series = await history.statement_series([i["queryid"] for i in items])
    for item in items:
        s = series.get(item["queryid"])
        item["spark_calls"] = sparkline(s.calls, "calls per interval, last 7 days") if s else ""
        item["spark_mean"] = sparkline(s.mean_ms, "mean time per interval, last 7 days") if s else ""
    return response_for(
        state, request, "queries.html", items=items, pgss=schema is not None, history=history is not None
    )


async def query(request: Request) -> Response:
    """The query's numbers, history and generic plan; the advisor's index if it was computed (cached)."""
    return await _query_page(request, compute_advice=False)


async def query_advice(request: Request) -> Response:
    """The same page with the advisor run for this query now (within its budget; cached), read-only."""
    return await _query_page(request, compute_advice=True)


async def _query_page(request: Request, compute_advice: bool) -> Response:
    state = _state(request)
    try:
        queryid = int(request.path_params["queryid"])
    except ValueError:
        raise HTTPException(404, "no such query") from None
    pool = await state.pool()
    async with pool.acquire() as conn:
        schema = await q.pgss_schema(conn)
        row = await q.one_query(conn, schema, queryid) if schema else None
        if row is None:
            raise HTTPException(404, "no such query in pg_stat_statements")
        hypopg = await state.advice.hypopg(conn)
        plan: PlanNode | None = None
        plan_error = None
        try:
            plan = await generic_plan(conn, row["query"])
        except ExplainError as exc:
            plan_error = redact_text(str(exc))
    advice: QueryAdvice | WorkloadAdvice | None
    if not hypopg:
        advice = state.advice.unavailable(queryid)
    elif compute_advice:
        advice = await state.advice.for_query(queryid)
    else:
        advice = state.advice.cached(queryid)
    item = _query_row(row)
    history = await _history_or_none(state)
    charts: list[str] = []
    if history is not None:
        s = (await history.statement_series([queryid], window=None)).get(queryid)
        if s:
            charts = [
                line_chart(s.times, s.calls, "calls per interval", "calls"),
                line_chart(s.times, s.mean_ms, "mean time per interval", "ms"),
            ]
    return response_for(
        state,
        request,
        "query.html",
        item=item,
        plan=plan,
        plan_error=plan_error,
        charts=charts,
        history=history is not None,
        advice=advice,
    )


async def indexes(request: Request) -> Response:
    state = _state(request)
    pool = await state.pool()
    async with pool.acquire() as conn:
        unused = await conn.fetch(q.UNUSED_INDEXES_SQL)
        duplicate = await conn.fetch(q.DUPLICATE_INDEXES_SQL)
        invalid = await conn.fetch(q.INVALID_INDEXES_SQL)
        hypopg = await state.advice.hypopg(conn)
    # The advice for the top queries is computed in the background (the page never waits for the advisor)
    advised = state.advice.workload() if hypopg else state.advice.unavailable()
    return response_for(
        state, request, "indexes.html", unused=unused, duplicate=duplicate, invalid=invalid, advised=advised
    )


def _autovacuum_options(reloptions: list[str] | None) -> list[str]:
    return [o for o in reloptions or [] if o.startswith(("autovacuum", "toast.autovacuum", "fillfactor"))]


async def tables(request: Request) -> Response:
    state = _state(request)
    pool = await state.pool()
    async with pool.acquire() as conn:
        rows = await conn.fetch(q.TABLES_SQL, q.TOP_TABLES)
        total = await conn.fetchval(q.TABLE_COUNT_SQL)
        settings = await conn.fetch(q.AUTOVACUUM_SETTINGS_SQL)
    history = await _history_or_none(state)
    growth: dict[int, tuple[float, float]] = {}
    if history is not None and rows:
        growth = await history.table_growth([int(r["relid"]) for r in rows])
    items = []
    for r in rows:
        live, dead = r["n_live_tup"] or 0, r["n_dead_tup"] or 0
        now_then = growth.get(int(r["relid"]))
        items.append(
            {
                "name": f"{r['schemaname']}.{r['relname']}",
                "total_bytes": r["total_bytes"],
                "growth": (now_then[0] - now_then[1]) if now_then else None,
                "live": live,
                "dead": dead,
                "dead_share": dead / (live + dead) if live + dead else None,
                "bloat_bytes": r["bloat_bytes"],
                "last_vacuum": max((t for t in (r["last_vacuum"], r["last_autovacuum"]) if t), default=None),
                "last_analyze": max((t for t in (r["last_analyze"], r["last_autoanalyze"]) if t), default=None),
                "options": _autovacuum_options(r["reloptions"]),
            }
        )
    return response_for(
        state, request, "tables.html", items=items, total=total, settings=settings, history=history is not None
    )


def _session(r: asyncpg.Record) -> dict[str, Any]:
    out = dict(r)
    out["query"] = redact_sql(r["query"] or "")
    return out


async def connections(request: Request) -> Response:
    state = _state(request)
    pool = await state.pool()
    async with pool.acquire() as conn:
        states = await conn.fetch(q.SESSIONS_BY_STATE_SQL)
        chains = await conn.fetch(q.LOCK_CHAINS_SQL)
        idle = await conn.fetch(q.IDLE_IN_TRANSACTION_SQL)
        sessions = await conn.fetch(q.SESSIONS_SQL)
        limits = await conn.fetchrow(q.CONNECTION_LIMITS_SQL)
    try:  # the doctor's connections check judges headroom and whether the app's pools fit (cached audit)
        sizing = (await state.doctor.findings()).of_check("connections")
    except ConnectError:
        sizing = []
    return response_for(
        state,
        request,
        "connections.html",
        states=states,
        chains=[_session(r) for r in chains],
        idle=[_session(r) for r in idle],
        sessions=[_session(r) for r in sessions],
        limits=limits,
        sizing=sizing,
    )


async def server_error(request: Request, exc: Exception) -> Response:
    """One line, redacted, for anything a page could not read (a timeout, a lost connection)."""
    text = str(exc).strip().splitlines()
    line = redact_text(text[0] if text else type(exc).__name__)
    return PlainTextResponse(f"pgpulse dashboard: {type(exc).__name__}: {line}", status_code=500)


def _ring(state: State) -> RequestRing:
    if state.requests_ring is None:
        raise HTTPException(404, "no request ring: mount the dashboard with requests_ring= fed by the profiler")
    return state.requests_ring


async def requests(request: Request) -> Response:
    state = _state(request)
    items = _ring(state).items()
    stored: list[StoredRoute] | None = None
    if state.request_history is not None:
        history = await _history_or_none(state)
        if history is not None:
            try:
                stored = await stored_routes(history.pool, history.target)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                stored = None
    return response_for(
        state,
        request,
        "requests.html",
        recent=items[::-1][:LIST_SIZE],
        slowest=sorted(items, key=lambda r: r.duration_ms, reverse=True)[:LIST_SIZE],
        most_queries=sorted(items, key=lambda r: r.query_count, reverse=True)[:LIST_SIZE],
        total=len(items),
        storing=state.request_history is not None,
        stored=stored,
    )


async def request_detail(request: Request) -> Response:
    state = _state(request)
    try:
        found = _ring(state).get(int(request.path_params["request_id"]))
    except ValueError:
        found = None
    if found is None:
        raise HTTPException(404, "no such request in the ring (it keeps the most recent ones only)")
    return response_for(state, request, "request.html", item=found)
