"""Counters into per-interval deltas that survive resets, restarts and queryid churn, and are never negative.

PostgreSQL's statistics are running totals since some origin, and the origin moves: ``pg_stat_statements_reset()``,
``pg_stat_reset()``, a crash (a clean restart keeps them: pg_stat_statements saves its file and 15+ persists the
cumulative statistics), an entry evicted from pg_stat_statements and later re-entered. So a delta is ``current -
previous`` only while the origin is the same; otherwise the interval **counts from zero**: its delta is the current
value, i.e. everything counted since the new origin, which lies inside the interval (we chose this over dropping
the interval: after a reset the new counts are exact, only the part between the last snapshot and the reset is
lost — an undercount, never a negative or inflated rate).

A series counts from zero when

* pg_stat_statements' own ``stats_reset`` (``pg_stat_statements_info``, 14+) changed — a full reset, or a start
  without its saved file: every entry started again (statements only);
* the server restarted *and lost its cumulative statistics* (``pg_postmaster_start_time()`` changed and the
  database's ``xact_commit`` fell: crash recovery discards them) — tables, indexes and the database only:
  pg_stat_statements keeps its entries through an immediate shutdown (measured on PostgreSQL 18), and when it
  does lose them its ``stats_reset`` says so;
* the series was not in the previous snapshot (a new query, or one evicted and re-entered), its entry's
  ``stats_since`` changed (pg_stat_statements 17+), or any of its counters fell (a partial reset, e.g.
  ``pg_stat_reset()`` or ``pg_stat_reset_single_table_counters``, or pg_stat_statements before 14).

The very first snapshot of a target has no previous one: it records the series' origins and no deltas.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import repeat
from operator import gt, lt, sub
from typing import Any

from pgpulse.history.kinds import Kind, KindSpec
from pgpulse.history.snapshot import Row

# Derived from floating-point means and deviations: may wobble in the last bit, so it never signals a reset.
DERIVED = frozenset({"exec_time_sumsq"})


class EpochReason(StrEnum):
    pgss_reset = "pg_stat_statements was reset"
    stats_reset = "the database statistics were reset"
    restart = "the server restarted"
    stats_lost = "the server restarted and lost its statistics"


@dataclass(frozen=True)
class Markers:
    """What tells one statistics origin from another, recorded on every snapshot."""

    postmaster_start: datetime
    db_stats_reset: datetime | None
    pgss_stats_reset: datetime | None
    xact_commit: float  # the database's commit counter: it only falls when the statistics were lost


@dataclass(frozen=True)
class Epochs:
    reasons: tuple[EpochReason, ...]
    statements_from_zero: bool  # every statement series counts from zero
    relations_from_zero: bool  # every table/index/database series counts from zero

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


def epochs(previous: Markers, current: Markers) -> Epochs:
    reasons: list[EpochReason] = []
    restarted = previous.postmaster_start != current.postmaster_start
    lost = restarted and current.xact_commit < previous.xact_commit
    pgss_reset = (
        previous.pgss_stats_reset is not None
        and current.pgss_stats_reset is not None
        and previous.pgss_stats_reset != current.pgss_stats_reset
    )
    if pgss_reset:
        reasons.append(EpochReason.pgss_reset)
    if previous.db_stats_reset != current.db_stats_reset:
        reasons.append(EpochReason.stats_reset)
    if lost:
        reasons.append(EpochReason.stats_lost)
    elif restarted:
        reasons.append(EpochReason.restart)
    return Epochs(tuple(reasons), statements_from_zero=pgss_reset, relations_from_zero=lost)


@dataclass(frozen=True)
class Previous:
    """What the store remembers of a series from the last snapshot it appeared in."""

    series_id: int
    present: bool  # in the target's previous snapshot
    raw: tuple[float, ...]
    running: tuple[float, ...]
    since: datetime | None
    labels: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class Change:
    """The outcome for one series in the current snapshot: its new state, and the point to store (if any)."""

    row: Row
    previous: Previous | None
    running: tuple[float, ...]
    deltas: tuple[float, ...] | None  # None: no point (first snapshot, or a sparse series that counted nothing)
    from_zero: bool
    counted: bool = False  # some counter moved in this interval


def _fell(spec: KindSpec, current: tuple[float, ...], previous: tuple[float, ...]) -> bool:
    """Did any counter fall? (``map`` keeps the common case — nothing fell — at C speed for 5,000 series.)"""
    if not any(map(lt, current, previous)):
        return False
    return any(c < p for name, c, p in zip(spec.counters, current, previous, strict=True) if name not in DERIVED)


def series_delta(
    spec: KindSpec, current: Row, previous: Previous | None, all_from_zero: bool
) -> tuple[tuple[float, ...], bool]:
    """The counters' deltas for one series and whether it counted from zero. Every delta is ≥ 0."""
    from_zero = (
        all_from_zero
        or previous is None
        or not previous.present
        or (previous.since is not None and current.since is not None and previous.since != current.since)
        or len(previous.raw) != len(current.counters)
        or _fell(spec, current.counters, previous.raw)
    )
    if from_zero or previous is None:
        return tuple(map(max, current.counters, repeat(0.0))), True
    return tuple(map(max, map(sub, current.counters, previous.raw), repeat(0.0))), False


def changes(
    spec: KindSpec,
    rows: Iterable[Row],
    previous: dict[tuple[Any, ...], Previous],
    previous_snapshot_id: int | None,
    epoch: Epochs | None,
) -> list[Change]:
    """Deltas and running totals for every series of one kind in the current snapshot.

    ``previous_snapshot_id`` is None on a target's first snapshot: origins are recorded, no points are made.
    """
    all_from_zero = False
    if epoch is not None:
        all_from_zero = epoch.statements_from_zero if spec.kind is Kind.statement else epoch.relations_from_zero
    running_index = [spec.counters.index(c) for c in spec.running]
    out: list[Change] = []
    for row in rows:
        prev = previous.get(row.key)
        base = prev.running if prev is not None else tuple(0.0 for _ in spec.running)
        if previous_snapshot_id is None:
            out.append(Change(row, prev, base, None, False))
            continue
        deltas, from_zero = series_delta(spec, row, prev, all_from_zero)
        running = tuple(b + deltas[i] for b, i in zip(base, running_index, strict=True))
        counted = any(map(gt, deltas, repeat(0.0)))
        keep = spec.dense or counted
        out.append(Change(row, prev, running, deltas if keep else None, from_zero, counted))
    return out
