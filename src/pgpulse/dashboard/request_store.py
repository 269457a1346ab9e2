"""Request history in the store: the ring's summaries written to ``pgpulse_history.request`` (migrations 0002 and
0003), so the Requests page can show more than the last few hundred requests of one process.

Only when the dashboard is built with both a ``requests_ring`` and a ``store_url``. The ring hands each new
summary to :meth:`RequestHistory.add` (in the request's task: an append to a bounded buffer, nothing more); a
thread of its own writes the buffer to the store in batches every few seconds, with a connection of its own and
its own event loop, so neither the application's loop nor its requests ever wait on the store. A store that
cannot be reached costs buffered summaries (the buffer keeps the newest ``buffer`` of them), never a request.

What is stored is what the page shows and nothing of the request itself: method, route template, timings,
counts (N+1s, unused eager loads, and since 0003 the connections opened by new-connection findings) and the
findings (redacted statement, fix, line; a new-connection finding's count, pool and fix). Bounded by retention:
rows older than ``retention`` and beyond the newest ``max_rows`` of the target are deleted after each write (both
by index).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from pgpulse.dashboard.requests import RequestSummary
from pgpulse.errors import one_line
from pgpulse.history.kinds import TAG
from pgpulse.history.store import open_store

log = structlog.get_logger("pgpulse.dashboard")

UPSERT_TARGET_SQL = f"""{TAG}
INSERT INTO pgpulse_history.target (name) VALUES ($1)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING target_id"""

# Oldest first, by the (target_id, at) index.
DELETE_OLD_SQL = f"""{TAG}
DELETE FROM pgpulse_history.request WHERE target_id = $1 AND at < $2"""

# Beyond the newest $2 rows of the target: the row at that offset (one index walk) and everything older.
DELETE_OVER_COUNT_SQL = f"""{TAG}
DELETE FROM pgpulse_history.request
WHERE target_id = $1 AND request_id <= (
  SELECT request_id FROM pgpulse_history.request WHERE target_id = $1 ORDER BY request_id DESC OFFSET $2 LIMIT 1)"""

COLUMNS = (
    "target_id",
    "at",
    "method",
    "route",
    "duration_ms",
    "db_ms",
    "query_count",
    "nplusone",
    "unused",
    "connections",
    "findings",
)

# The page's summary of the stored window, per route: worst first.
ROUTES_SQL = f"""{TAG}
SELECT r.method, r.route, count(*) AS requests, avg(r.duration_ms) AS mean_ms, max(r.duration_ms) AS max_ms,
       max(r.query_count) AS max_queries, sum(r.nplusone) AS nplusone, sum(r.unused) AS unused,
       sum(r.connections) AS connections, max(r.at) AS last
FROM pgpulse_history.request r JOIN pgpulse_history.target t USING (target_id)
WHERE t.name = $1 AND r.at > now() - $2::interval
GROUP BY r.method, r.route ORDER BY max(r.duration_ms) DESC LIMIT $3"""


def _findings(summary: RequestSummary) -> str:
    return json.dumps(
        [{"kind": "n_plus_one", "headline": f.headline, "fix": f.fix, "line": f.line} for f in summary.findings]
        + [
            {
                "kind": "unused_eager_load",
                "headline": f"{u.option} loaded {u.relationship}, which nothing read",
                "fix": u.fix,
                "line": u.line,
            }
            for u in summary.unused
        ]
        + [
            {
                "kind": c.kind,
                "headline": c.headline,
                "fix": c.fix,
                "line": None,
                "count": c.count,
                "connect_ms": c.connect_ms,
                "pool": c.pool,
                "pool_class": c.pool_class,
            }
            for c in summary.connections
        ]
    )


class RequestHistory:
    """Writes the ring's summaries for ``target`` into the store at ``store_url`` from a background thread."""

    def __init__(
        self,
        store_url: str,
        target: str,
        *,
        interval: float = 5.0,
        retention: timedelta = timedelta(days=30),
        max_rows: int = 100_000,
        buffer: int = 5_000,
    ) -> None:
        self.store_url = store_url
        self.target = target
        self.interval = interval
        self.retention = retention
        self.max_rows = max_rows
        self._pending: deque[RequestSummary] = deque(maxlen=buffer)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0  # summaries written so far (tests and the page read it)

    def add(self, summary: RequestSummary) -> None:
        with self._lock:
            self._pending.append(summary)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pgpulse-request-history", daemon=True)
                self._thread.start()

    def flush_soon(self) -> None:
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered and stop the thread."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _take(self) -> list[RequestSummary]:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        return batch

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        store = None
        while True:
            stopping = self._stop.is_set()
            batch = self._take()
            if batch:
                try:
                    if store is None:
                        store = await open_store(self.store_url)  # migrates the store when it is older
                    await self._write(store.conn, batch)
                except Exception as exc:  # the store is down or refused: these summaries are lost, requests are not
                    log.warning("request_history_write_failed", error=type(exc).__name__, detail=one_line(exc))
                    if store is not None:
                        with contextlib.suppress(Exception):
                            await store.close()
                        store = None
            if stopping:
                break
            await asyncio.to_thread(self._wake.wait, self.interval)
            self._wake.clear()
        if store is not None:
            await store.close()

    async def _write(self, conn: asyncpg.Connection, batch: list[RequestSummary]) -> None:
        async with conn.transaction():
            target_id = await conn.fetchval(UPSERT_TARGET_SQL, self.target)
            rows = [
                (
                    target_id,
                    datetime.fromtimestamp(s.at, UTC),
                    s.method,
                    s.route,
                    s.duration_ms,
                    s.db_ms,
                    s.query_count,
                    len(s.findings),
                    len(s.unused),
                    s.new_connections,
                    _findings(s),
                )
                for s in batch
            ]
            await conn.copy_records_to_table("request", schema_name="pgpulse_history", columns=COLUMNS, records=rows)
            await conn.execute(DELETE_OLD_SQL, target_id, datetime.now(UTC) - self.retention)
            await conn.execute(DELETE_OVER_COUNT_SQL, target_id, self.max_rows)
        self.written += len(batch)


@dataclass(frozen=True, slots=True)
class StoredRoute:
    method: str
    route: str
    requests: int
    mean_ms: float
    max_ms: float
    max_queries: int
    nplusone: int
    unused: int
    connections: int  # new connections opened by the route's new-connection findings (NullPool, churn)
    last: datetime


async def stored_routes(
    pool: asyncpg.Pool, target: str, window: timedelta = timedelta(days=7), limit: int = 50
) -> list[StoredRoute] | None:
    """Per route over the window, worst first; None when the store has no request history table (not migrated)."""
    async with pool.acquire() as conn:
        try:
            rows = await conn.fetch(ROUTES_SQL, target, window, limit)
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            return None
    return [
        StoredRoute(
            r["method"],
            r["route"],
            int(r["requests"]),
            float(r["mean_ms"]),
            float(r["max_ms"]),
            int(r["max_queries"]),
            int(r["nplusone"]),
            int(r["unused"]),
            int(r["connections"]),
            r["last"],
        )
        for r in rows
    ]
