"""The dashboard's one coupling to the history store: read-only SQL over ``pgpulse_history``'s points.

The store keeps per-interval deltas (``statement_point``) and gauges (``table_point.total_bytes``); the
windows here are measured back from the target's latest snapshot, not from ``now()``, so a store that stopped
collecting still draws its last week. Values are bound; nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from pgpulse.history.kinds import SCHEMA
from pgpulse.history.targets import default_name

TAG = "/* pgpulse:dashboard */"
SPARK_WINDOW = timedelta(days=7)
GROWTH_WINDOW = timedelta(days=7)

TARGET_SQL = f"""SELECT {TAG}
  t.target_id, max(s.taken_at) AS last FROM {SCHEMA}.target t
JOIN {SCHEMA}.snapshot s USING (target_id) WHERE t.name = $1 GROUP BY t.target_id"""

STATEMENT_POINTS_SQL = f"""SELECT {TAG}
  s.queryid, p.bucket_end, sum(p.calls) AS calls, sum(p.total_exec_time) AS total_exec_time
FROM {SCHEMA}.statement_series s JOIN {SCHEMA}.statement_point p USING (series_id)
WHERE s.target_id = $1 AND s.queryid = ANY($2::bigint[]) AND p.bucket_end > $3
GROUP BY 1, 2 ORDER BY 1, 2"""

# Per table: its latest size and its size at the start of the window (two primary-key probes per table).
TABLE_GROWTH_SQL = f"""SELECT {TAG}
  r.relid, latest.total_bytes AS now_bytes, earliest.total_bytes AS then_bytes
FROM {SCHEMA}.relation_series r
CROSS JOIN LATERAL (SELECT p.total_bytes, p.bucket_end FROM {SCHEMA}.table_point p
                    WHERE p.series_id = r.series_id ORDER BY p.bucket_end DESC LIMIT 1) latest
CROSS JOIN LATERAL (SELECT p.total_bytes FROM {SCHEMA}.table_point p
                    WHERE p.series_id = r.series_id AND p.bucket_end >= latest.bucket_end - $3::interval
                    ORDER BY p.bucket_end LIMIT 1) earliest
WHERE r.target_id = $1 AND r.kind = 'table' AND r.relid = ANY($2::oid[])"""


@dataclass
class Series:
    times: list[datetime] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    mean_ms: list[float] = field(default_factory=list)


class HistorySource:
    """Reads one target's history from a store, on a small read-only pool of its own."""

    def __init__(self, pool: asyncpg.Pool, database_url: str, target: str | None = None) -> None:
        self.pool = pool
        self.target = target or default_name(database_url)

    async def _target(self, conn: asyncpg.Connection) -> tuple[int, datetime] | None:
        """The target's id and latest snapshot time; None when the store has no such target (or no schema yet:
        a store nobody migrated is a store without history, not an error page)."""
        try:
            row = await conn.fetchrow(TARGET_SQL, self.target)
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            return None
        return (int(row["target_id"]), row["last"]) if row else None

    async def statement_series(self, queryids: list[int], window: timedelta | None = SPARK_WINDOW) -> dict[int, Series]:
        """Calls and mean time per interval for each queryid (all its users and top-level flags summed)."""
        async with self.pool.acquire() as conn:
            target = await self._target(conn)
            if target is None or not queryids:
                return {}
            since = target[1] - window if window else datetime.min.replace(tzinfo=target[1].tzinfo)
            rows = await conn.fetch(STATEMENT_POINTS_SQL, target[0], queryids, since)
        out: dict[int, Series] = defaultdict(Series)
        for r in rows:
            series = out[int(r["queryid"])]
            series.times.append(r["bucket_end"])
            series.calls.append(float(r["calls"]))
            series.mean_ms.append(float(r["total_exec_time"]) / r["calls"] if r["calls"] else 0.0)
        return dict(out)

    async def table_growth(self, relids: list[int]) -> dict[int, tuple[float, float]]:
        """``relid → (bytes now, bytes a week before the latest snapshot)`` for the tables the store knows."""
        async with self.pool.acquire() as conn:
            target = await self._target(conn)
            if target is None or not relids:
                return {}
            rows = await conn.fetch(TABLE_GROWTH_SQL, target[0], relids, GROWTH_WINDOW)
        return {int(r["relid"]): (float(r["now_bytes"]), float(r["then_bytes"])) for r in rows}
