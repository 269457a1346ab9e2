"""Retention with downsampling: fine points for recent history, coarser ones for older, none past the horizon.

The default keeps every snapshot interval for 2 days, hourly buckets for 30 days and daily buckets for a year
(``raw:2d,1h:30d,1d:365d``, configurable). Rolling points up is exact: counter deltas are summed, running totals
take the bucket's last (they never decrease, so the maximum), gauges take the value at the bucket's last point,
and the bucket spans its first point's start to its last point's end. Sums over any window made of whole
buckets are the same before and after, and so is every running total the diff reads.

Only buckets entirely older than the cut-off are rolled (the cut-off is aligned to the coarser width), so a
bucket is rolled once, from complete data. A series is forgotten only when it has no points left and was not in
the target's latest snapshot (forgetting a live one would make its next interval count from zero).

Points are found by ``resolution_s = ANY(the policy's resolutions)``, an exact range scan each on the
``(resolution_s, bucket_end)`` index, so a run with nothing to roll reads next to nothing. After a policy change
that drops a resolution, points at it stay until removed by hand.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from pgpulse.errors import UserError
from pgpulse.history.kinds import SCHEMA, SPECS, TAG, Kind, KindSpec
from pgpulse.sql import quote_ident, quote_qualified

ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # buckets are aligned to UTC midnight
_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class PolicyError(UserError, ValueError):
    """A retention policy that cannot be used; the message shows the expected form."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``5m``, ``2h``, ``30d``, ``1w`` → timedelta; :class:`ValueError` with the expected form otherwise."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected a number and s/m/h/d/w, e.g. 5m, 2h, 30d)")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class Level:
    resolution: timedelta  # zero: one point per snapshot interval
    keep: timedelta


@dataclass(frozen=True)
class Policy:
    levels: tuple[Level, ...]

    @classmethod
    def parse(cls, text: str) -> Policy:
        """``raw:2d,1h:30d,1d:365d``: finest first, each level coarser and kept longer than the one before."""
        levels = []
        try:
            for part in text.split(","):
                width, keep = part.split(":")
                resolution = timedelta(0) if width.strip().lower() == "raw" else parse_duration(width)
                levels.append(Level(resolution, parse_duration(keep)))
        except ValueError as exc:
            raise PolicyError(
                f"bad retention {text!r}: expected e.g. raw:2d,1h:30d,1d:365d ({exc})"
                if "duration" not in str(exc)
                else f"bad retention {text!r}: {exc}"
            ) from exc
        if not levels or levels[0].resolution != timedelta(0):
            raise PolicyError(f"bad retention {text!r}: the first level must be raw (e.g. raw:2d,1h:30d)")
        for finer, coarser in itertools.pairwise(levels):
            if coarser.resolution <= finer.resolution or coarser.keep < finer.keep:
                raise PolicyError(
                    f"bad retention {text!r}: each level must be coarser and kept at least as long as the one before"
                )
        return cls(tuple(levels))


DEFAULT_POLICY = Policy.parse("raw:2d,1h:30d,1d:365d")


def floor_to(moment: datetime, width: timedelta) -> datetime:
    """The start of the ``width``-bucket holding ``moment`` (what ``date_bin`` computes in SQL)."""
    return ORIGIN + ((moment - ORIGIN) // width) * width


@dataclass
class RetentionResult:
    rolled: dict[str, int]  # points folded into coarser buckets, per point table
    deleted: dict[str, int]  # points past the horizon
    snapshots_deleted: int
    series_forgotten: int


def _series_filter(spec: KindSpec) -> tuple[str, str]:
    """The series table of a kind and the condition that selects one target's series of that kind."""
    if spec.kind is Kind.statement:
        return quote_qualified(SCHEMA, "statement_series"), "s.target_id = $1"
    # The kind is one of our enum's constants ('table', 'index', 'database'), never input; the target is bound.
    return quote_qualified(SCHEMA, "relation_series"), f"s.target_id = $1 AND s.kind = '{spec.kind.value}'"


def _rollup_sql(spec: KindSpec) -> str:
    series, where = _series_filter(spec)
    point = quote_qualified(SCHEMA, spec.point_table)
    aggregates = [f"sum(p.{quote_ident(c)}) AS {quote_ident(c)}" for c in spec.counters]
    aggregates += [f"max(p.{quote_ident(c)}) AS {quote_ident(c)}" for c in spec.cum_columns]
    aggregates += [
        f"(array_agg(p.{quote_ident(g)} ORDER BY p.bucket_end DESC))[1] AS {quote_ident(g)}" for g in spec.gauges
    ]
    body = ",\n       ".join(aggregates)
    return f"""{TAG}
CREATE TEMP TABLE pgpulse_rollup ON COMMIT DROP AS
SELECT p.series_id, min(p.bucket_start) AS bucket_start, max(p.bucket_end) AS bucket_end,
       $4::integer AS resolution_s, bool_or(p.from_zero) AS from_zero,
       {body}
FROM {point} p JOIN {series} s ON s.series_id = p.series_id
WHERE {where} AND p.resolution_s = ANY($6::integer[]) AND p.bucket_end < $2
GROUP BY p.series_id, date_bin($3, p.bucket_end, $5)"""


def _delete_sql(spec: KindSpec, condition: str) -> str:
    series, where = _series_filter(spec)
    point = quote_qualified(SCHEMA, spec.point_table)
    return f"""{TAG}
DELETE FROM {point} p USING {series} s
WHERE s.series_id = p.series_id AND {where} AND {condition}"""


def _columns(spec: KindSpec) -> str:
    names = ["series_id", "bucket_start", "bucket_end", "resolution_s", "from_zero"]
    names += [*spec.counters, *spec.cum_columns, *spec.gauges]
    return ", ".join(quote_ident(n) for n in names)


def _count(status: str) -> int:
    """Rows affected, from asyncpg's command tag (``DELETE 12``, ``INSERT 0 12``)."""
    return int(status.rsplit(" ", 1)[-1])


FORGET_SQL = f"""{TAG}
WITH gone_statements AS (
  DELETE FROM pgpulse_history.statement_series s
  WHERE s.target_id = $1 AND NOT s.present
    AND NOT EXISTS (SELECT 1 FROM pgpulse_history.statement_point p WHERE p.series_id = s.series_id)
  RETURNING 1
), gone_relations AS (
  DELETE FROM pgpulse_history.relation_series s
  WHERE s.target_id = $1 AND NOT s.present
    AND NOT EXISTS (SELECT 1 FROM pgpulse_history.table_point p WHERE p.series_id = s.series_id)
    AND NOT EXISTS (SELECT 1 FROM pgpulse_history.index_point p WHERE p.series_id = s.series_id)
    AND NOT EXISTS (SELECT 1 FROM pgpulse_history.database_point p WHERE p.series_id = s.series_id)
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone_statements) + (SELECT count(*) FROM gone_relations)"""

DELETE_SNAPSHOTS_SQL = f"""{TAG}
DELETE FROM pgpulse_history.snapshot
WHERE target_id = $1 AND taken_at < $2
  AND snapshot_id <> (SELECT snapshot_id FROM pgpulse_history.snapshot WHERE target_id = $1
                      ORDER BY taken_at DESC LIMIT 1)"""


async def apply_retention(
    conn: asyncpg.Connection, target_id: int, policy: Policy = DEFAULT_POLICY, now: datetime | None = None
) -> RetentionResult:
    """Roll one target's points up level by level and drop what is past the horizon, in one transaction."""
    now = now or datetime.now(UTC)
    result = RetentionResult({}, {}, 0, 0)
    resolutions = [int(level.resolution.total_seconds()) for level in policy.levels]
    horizon = now - policy.levels[-1].keep
    async with conn.transaction():
        for spec in SPECS.values():
            rolled = 0
            for i, (finer, coarser) in enumerate(itertools.pairwise(policy.levels), start=1):
                cutoff = floor_to(now - finer.keep, coarser.resolution)
                width = int(coarser.resolution.total_seconds())
                finer_resolutions = resolutions[:i]
                await conn.execute(
                    _rollup_sql(spec), target_id, cutoff, coarser.resolution, width, ORIGIN, finer_resolutions
                )
                status = await conn.execute(
                    _delete_sql(spec, "p.resolution_s = ANY($3::integer[]) AND p.bucket_end < $2"),
                    target_id,
                    cutoff,
                    finer_resolutions,
                )
                rolled += _count(status)
                await conn.execute(
                    f"{TAG} INSERT INTO {quote_qualified(SCHEMA, spec.point_table)} ({_columns(spec)}) "
                    f"SELECT {_columns(spec)} FROM pgpulse_rollup"
                )
                await conn.execute(f"{TAG} DROP TABLE pgpulse_rollup")
            status = await conn.execute(
                _delete_sql(spec, "p.resolution_s = ANY($3::integer[]) AND p.bucket_end < $2"),
                target_id,
                horizon,
                resolutions,
            )
            result.rolled[spec.point_table] = rolled
            result.deleted[spec.point_table] = _count(status)
        result.snapshots_deleted = _count(await conn.execute(DELETE_SNAPSHOTS_SQL, target_id, horizon))
        result.series_forgotten = int(await conn.fetchval(FORGET_SQL, target_id))
    return result
