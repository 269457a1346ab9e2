"""Regressions found by comparing two windows of history: a baseline window, and the current one after it.

Windows are ``(baseline_start, split]`` and ``(split, end]``. A counter's sum over a window is the difference of
its running total (the ``cum_*`` columns every point carries) at the window's two ends, where "the running total
at t" is the last point at or before t — one primary-key probe per series and moment. So a diff over 30 days of
history reads three points per series, not 30 days of rows, and stays well under a second for 5,000 statements.
Resolution follows retention: after roll-up, a moment inside an hourly bucket reads the bucket before it.

What is reported (each a regression, so ``pgpulse history diff`` exits 1 when any is found):

* a query whose mean execution time rose at least ``slower_ratio`` (2×) with at least ``min_calls`` (100)
  calls in both windows — the most slowed-down first;
* a query in the current window's top ``top_n`` (10) by total time that did not run at all in the baseline
  (only when the baseline window holds data);
* an index scanned in the baseline and never in the current window, and still there at the end;
* a table or index that grew by at least ``grow_ratio`` (+25 %) *and* ``grow_min_bytes`` (100 MiB) between the
  split and the end;
* a table whose dead tuples rose by at least ``dead_min`` (10,000) and make up at least ``dead_share`` (20 %) of
  its tuples at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

from pgpulse.history.kinds import TAG
from pgpulse.sql import redact_sql


class FindingKind(StrEnum):
    slower_query = "slower query"
    new_top_query = "new query in the top"
    unused_index = "index no longer used"
    table_grew = "table grew"
    index_grew = "index grew"
    dead_tuples = "dead tuples piled up"


@dataclass(frozen=True)
class Thresholds:
    slower_ratio: float = 2.0
    min_calls: int = 100
    top_n: int = 10
    grow_ratio: float = 1.25
    grow_min_bytes: int = 100 * 1024 * 1024
    dead_min: int = 10_000
    dead_share: float = 0.2


@dataclass(frozen=True)
class Windows:
    baseline_start: datetime
    split: datetime
    end: datetime

    @classmethod
    def around(cls, split: datetime, end: datetime, baseline: timedelta | None = None) -> Windows:
        """Current window ``(split, end]``; the baseline is as long (or ``baseline``) and ends at ``split``."""
        return cls(split - (baseline if baseline is not None else end - split), split, end)


@dataclass
class Finding:
    kind: FindingKind
    subject: str  # the query (redacted) or schema.relation
    before: float | None
    after: float | None
    unit: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.name,
            "title": self.kind.value,
            "subject": self.subject,
            "before": self.before,
            "after": self.after,
            "unit": self.unit,
            "detail": self.detail,
            "evidence": self.evidence,
        }


@dataclass
class DiffReport:
    target: str
    windows: Windows
    baseline_snapshots: int
    current_snapshots: int
    findings: list[Finding]
    seconds: float = 0.0

    @property
    def regressions(self) -> bool:
        return bool(self.findings)


# Snapshots that closed an interval in each window (a target's first snapshot only records origins).
COVERAGE_SQL = f"""{TAG}
SELECT count(*) FILTER (WHERE taken_at > $2 AND taken_at <= $3) AS baseline,
       count(*) FILTER (WHERE taken_at > $3 AND taken_at <= $4) AS current
FROM pgpulse_history.snapshot
WHERE target_id = $1
  AND taken_at > (SELECT min(taken_at) FROM pgpulse_history.snapshot WHERE target_id = $1)"""

# The running totals of every statement that counted anything since the baseline began, at the three moments.
STATEMENTS_SQL = f"""{TAG}
SELECT s.series_id, s.queryid, s.userid, s.query,
       e.cum_calls AS e_calls, e.cum_total_exec_time AS e_time,
       coalesce(m.cum_calls, 0) AS m_calls, coalesce(m.cum_total_exec_time, 0) AS m_time,
       coalesce(b.cum_calls, 0) AS b_calls, coalesce(b.cum_total_exec_time, 0) AS b_time
FROM pgpulse_history.statement_series s
CROSS JOIN LATERAL (
  SELECT p.cum_calls, p.cum_total_exec_time FROM pgpulse_history.statement_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $4 ORDER BY p.bucket_end DESC LIMIT 1) e
LEFT JOIN LATERAL (
  SELECT p.cum_calls, p.cum_total_exec_time FROM pgpulse_history.statement_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $3 ORDER BY p.bucket_end DESC LIMIT 1) m ON true
LEFT JOIN LATERAL (
  SELECT p.cum_calls, p.cum_total_exec_time FROM pgpulse_history.statement_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $2 ORDER BY p.bucket_end DESC LIMIT 1) b ON true
WHERE s.target_id = $1 AND s.last_counted_at > $2"""

# Relations are recorded on every snapshot: the newest point at or before the end tells which still exist.
INDEXES_SQL = f"""{TAG}
SELECT s.schemaname, s.relname, s.indexname,
       e.cum_idx_scan AS e_scans, e.size_bytes AS e_size, e.bucket_end AS e_at,
       max(e.bucket_end) OVER () AS last_at,
       m.cum_idx_scan AS m_scans, m.size_bytes AS m_size,
       coalesce(b.cum_idx_scan, 0) AS b_scans
FROM pgpulse_history.relation_series s
CROSS JOIN LATERAL (
  SELECT p.cum_idx_scan, p.size_bytes, p.bucket_end FROM pgpulse_history.index_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $4 ORDER BY p.bucket_end DESC LIMIT 1) e
LEFT JOIN LATERAL (
  SELECT p.cum_idx_scan, p.size_bytes FROM pgpulse_history.index_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $3 ORDER BY p.bucket_end DESC LIMIT 1) m ON true
LEFT JOIN LATERAL (
  SELECT p.cum_idx_scan FROM pgpulse_history.index_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $2 ORDER BY p.bucket_end DESC LIMIT 1) b ON true
WHERE s.target_id = $1 AND s.kind = 'index'"""

TABLES_SQL = f"""{TAG}
SELECT s.schemaname, s.relname,
       e.total_bytes AS e_size, e.n_live_tup AS e_live, e.n_dead_tup AS e_dead, e.bucket_end AS e_at,
       max(e.bucket_end) OVER () AS last_at,
       m.total_bytes AS m_size, m.n_dead_tup AS m_dead
FROM pgpulse_history.relation_series s
CROSS JOIN LATERAL (
  SELECT p.total_bytes, p.n_live_tup, p.n_dead_tup, p.bucket_end FROM pgpulse_history.table_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $3 ORDER BY p.bucket_end DESC LIMIT 1) e
LEFT JOIN LATERAL (
  SELECT p.total_bytes, p.n_dead_tup FROM pgpulse_history.table_point p
  WHERE p.series_id = s.series_id AND p.bucket_end <= $2 ORDER BY p.bucket_end DESC LIMIT 1) m ON true
WHERE s.target_id = $1 AND s.kind = 'table'"""


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _statement_findings(rows: list[asyncpg.Record], t: Thresholds, baseline_has_data: bool) -> list[Finding]:
    slower: list[tuple[float, Finding]] = []
    current_totals: list[tuple[float, asyncpg.Record, float, float]] = []
    for r in rows:
        base_calls, base_time = r["m_calls"] - r["b_calls"], r["m_time"] - r["b_time"]
        cur_calls, cur_time = r["e_calls"] - r["m_calls"], r["e_time"] - r["m_time"]
        if cur_calls > 0:
            current_totals.append((cur_time, r, base_calls, cur_calls))
        if base_calls < t.min_calls or cur_calls < t.min_calls or base_time <= 0:
            continue
        before, after = base_time / base_calls, cur_time / cur_calls
        ratio = after / before
        if ratio >= t.slower_ratio:
            finding = Finding(
                FindingKind.slower_query,
                redact_sql(r["query"]),
                round(before, 4),
                round(after, 4),
                "ms/call",
                f"mean {before:.3f} → {after:.3f} ms ({ratio:.1f}×) "
                f"over {int(base_calls):,} → {int(cur_calls):,} calls",
                {
                    "queryid": r["queryid"],
                    "userid": r["userid"],
                    "ratio": round(ratio, 2),
                    "calls_before": int(base_calls),
                    "calls_after": int(cur_calls),
                    "total_ms_before": round(base_time, 3),
                    "total_ms_after": round(cur_time, 3),
                },
            )
            slower.append((ratio, finding))
    findings = [f for _, f in sorted(slower, key=lambda x: -x[0])]
    if baseline_has_data:
        top = sorted(current_totals, key=lambda x: -x[0])[: t.top_n]
        for rank, (total, r, base_calls, cur_calls) in enumerate(top, start=1):
            if base_calls == 0:
                findings.append(
                    Finding(
                        FindingKind.new_top_query,
                        redact_sql(r["query"]),
                        None,
                        round(total, 3),
                        "ms total",
                        f"#{rank} by total time ({total:.1f} ms over {int(cur_calls):,} calls), absent before",
                        {"queryid": r["queryid"], "userid": r["userid"], "rank": rank, "calls_after": int(cur_calls)},
                    )
                )
    return findings


def _index_findings(rows: list[asyncpg.Record], t: Thresholds, current_has_data: bool) -> list[Finding]:
    unused: list[Finding] = []
    grew: list[Finding] = []
    for r in rows:
        if r["e_at"] != r["last_at"] or r["m_scans"] is None:
            continue  # dropped before the end, or created after the split
        name = _qualified(r["schemaname"], r["indexname"])
        base_scans = r["m_scans"] - r["b_scans"]
        cur_scans = r["e_scans"] - r["m_scans"]
        if current_has_data and base_scans > 0 and cur_scans == 0:
            unused.append(
                Finding(
                    FindingKind.unused_index,
                    name,
                    base_scans,
                    0,
                    "scans",
                    f"{int(base_scans):,} scans in the baseline, none since (on {r['relname']}, "
                    f"{int(r['e_size']):,} bytes)",
                    {"table": r["relname"], "size_bytes": int(r["e_size"])},
                )
            )
        grown = _growth(FindingKind.index_grew, name, r["m_size"], r["e_size"], t)
        if grown:
            grew.append(grown)
    return sorted(unused, key=lambda f: -(f.before or 0)) + grew


def _growth(kind: FindingKind, name: str, before: float | None, after: float, t: Thresholds) -> Finding | None:
    if before is None or before <= 0:
        return None
    if after / before >= t.grow_ratio and after - before >= t.grow_min_bytes:
        return Finding(
            kind,
            name,
            before,
            after,
            "bytes",
            f"{before / 1048576:,.1f} → {after / 1048576:,.1f} MiB (+{(after / before - 1) * 100:.0f} %)",
            {"grew_bytes": int(after - before)},
        )
    return None


def _table_findings(rows: list[asyncpg.Record], t: Thresholds) -> list[Finding]:
    dead: list[Finding] = []
    grew: list[Finding] = []
    for r in rows:
        if r["e_at"] != r["last_at"] or r["m_size"] is None:
            continue
        name = _qualified(r["schemaname"], r["relname"])
        rise = r["e_dead"] - r["m_dead"]
        tuples = r["e_live"] + r["e_dead"]
        if rise >= t.dead_min and tuples > 0 and r["e_dead"] / tuples >= t.dead_share:
            dead.append(
                Finding(
                    FindingKind.dead_tuples,
                    name,
                    r["m_dead"],
                    r["e_dead"],
                    "dead tuples",
                    f"{int(r['m_dead']):,} → {int(r['e_dead']):,} dead tuples "
                    f"({r['e_dead'] / tuples * 100:.0f} % of the table): is autovacuum keeping up?",
                    {"live_tuples": int(r["e_live"])},
                )
            )
        grown = _growth(FindingKind.table_grew, name, r["m_size"], r["e_size"], t)
        if grown:
            grew.append(grown)
    return sorted(dead, key=lambda f: -(f.after or 0)) + sorted(grew, key=lambda f: -(f.after or 0))


async def diff(
    conn: asyncpg.Connection, target_id: int, target: str, windows: Windows, thresholds: Thresholds | None = None
) -> DiffReport:
    """Compare the two windows of one target's history in the store on ``conn``."""
    t = thresholds or Thresholds()
    began = time.perf_counter()
    w = (target_id, windows.baseline_start, windows.split, windows.end)
    coverage = await conn.fetchrow(COVERAGE_SQL, *w)
    statements = await conn.fetch(STATEMENTS_SQL, *w)
    indexes = await conn.fetch(INDEXES_SQL, *w)
    tables = await conn.fetch(TABLES_SQL, target_id, windows.split, windows.end)
    findings = _statement_findings(list(statements), t, coverage["baseline"] > 0)
    index_findings = _index_findings(list(indexes), t, coverage["current"] > 0)
    table_findings = _table_findings(list(tables), t)
    unused = [f for f in index_findings if f.kind is FindingKind.unused_index]
    findings += unused + [f for f in table_findings if f.kind is FindingKind.dead_tuples]
    findings += [f for f in table_findings if f.kind is FindingKind.table_grew]
    findings += [f for f in index_findings if f.kind is FindingKind.index_grew]
    return DiffReport(
        target,
        windows,
        int(coverage["baseline"]),
        int(coverage["current"]),
        findings,
        time.perf_counter() - began,
    )


async def diff_in_store(
    url: str,
    target: str | None,
    end: datetime,
    thresholds: Thresholds,
    *,
    split: datetime | None = None,
    mark: str | None = None,
    length: timedelta | None = None,
) -> DiffReport:
    """Diff ``target``'s history in the store at ``url`` around ``split`` (or the time of the mark ``mark``).

    Read in one read-only transaction; raises ``StoreError`` for an unknown target or mark, or a mark after
    ``end``."""
    from pgpulse.history.store import StoreError, open_store  # the store imports this module's neighbours

    store = await open_store(url, auto_migrate=False)
    try:
        target_id, name = await store.require_target(target)
        if mark is not None:
            split = await store.mark_time(target_id, mark)
            if split >= end:
                raise StoreError(f"mark {mark!r} is in the future ({split.isoformat()})")
        if split is None:
            raise ValueError("diff_in_store needs split or mark")
        async with store.conn.transaction(readonly=True):
            return await diff(store.conn, target_id, name, Windows.around(split, end, length), thresholds)
    finally:
        await store.close()
