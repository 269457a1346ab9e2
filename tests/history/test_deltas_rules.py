"""The counting rules of deltas.py on hand-made series (no server needed): when an interval counts from zero,
and that no delta is ever negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pgpulse.history.deltas import EpochReason, Markers, Previous, changes, epochs
from pgpulse.history.kinds import STATEMENT, TABLE
from pgpulse.history.snapshot import Row

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
N = len(STATEMENT.counters)


def _statement(calls: float, sumsq: float = 0.0, since: datetime | None = None) -> Row:
    counters = [0.0] * N
    counters[STATEMENT.counters.index("calls")] = calls
    counters[STATEMENT.counters.index("exec_time_sumsq")] = sumsq
    return Row((1, 10, 5, True), ("SELECT 1",), tuple(counters), since=since)


def _previous(row: Row, present: bool = True, running_calls: float = 100.0) -> Previous:
    return Previous(1, present, row.counters, (running_calls, 0.0, 0.0), row.since)


def _calls(change_deltas: tuple[float, ...] | None) -> float:
    assert change_deltas is not None
    return change_deltas[STATEMENT.counters.index("calls")]


def test_a_counter_that_grew_gives_the_difference_and_extends_the_running_total() -> None:
    before = _statement(40)
    [c] = changes(STATEMENT, [_statement(55)], {before.key: _previous(before)}, 7, None)
    assert _calls(c.deltas) == 15 and not c.from_zero
    assert c.running == (115.0, 0.0, 0.0)


def test_a_counter_that_fell_counts_from_zero_never_negative() -> None:
    before = _statement(40)
    [c] = changes(STATEMENT, [_statement(6)], {before.key: _previous(before)}, 7, None)
    assert _calls(c.deltas) == 6 and c.from_zero
    assert c.running == (106.0, 0.0, 0.0)


def test_a_derived_float_that_wobbles_down_is_not_a_reset_and_is_clamped_to_zero() -> None:
    before = _statement(40, sumsq=1.0000000001)
    [c] = changes(STATEMENT, [_statement(40, sumsq=1.0)], {before.key: _previous(before)}, 7, None)
    assert not c.from_zero
    assert c.deltas is None  # nothing counted: a sparse statement series gets no point
    assert c.running == (100.0, 0.0, 0.0)


def test_an_entry_missing_from_the_previous_snapshot_counts_from_zero() -> None:
    before = _statement(40)
    [c] = changes(STATEMENT, [_statement(55)], {before.key: _previous(before, present=False)}, 7, None)
    assert _calls(c.deltas) == 55 and c.from_zero


def test_a_new_stats_since_counts_from_zero_even_when_the_counter_is_higher() -> None:
    before = _statement(40, since=T0)
    [c] = changes(
        STATEMENT, [_statement(55, since=T0 + timedelta(minutes=3))], {before.key: _previous(before)}, 7, None
    )
    assert _calls(c.deltas) == 55 and c.from_zero


def test_the_first_snapshot_records_origins_without_points() -> None:
    [c] = changes(STATEMENT, [_statement(55)], {}, None, None)
    assert c.deltas is None and c.running == (0.0, 0.0, 0.0)


def _markers(
    start: datetime = T0, db_reset: datetime | None = None, pgss_reset: datetime | None = T0, xact: float = 1e6
) -> Markers:
    return Markers(start, db_reset, pgss_reset, xact)


def test_a_pg_stat_statements_reset_restarts_statements_only() -> None:
    e = epochs(_markers(), _markers(pgss_reset=T0 + timedelta(hours=1), xact=1e6 + 5))
    assert e.reasons == (EpochReason.pgss_reset,)
    assert e.statements_from_zero and not e.relations_from_zero
    before = _statement(40)
    [c] = changes(STATEMENT, [_statement(55)], {before.key: _previous(before)}, 7, e)
    assert _calls(c.deltas) == 55


def test_a_clean_restart_continues_and_a_restart_that_lost_the_statistics_restarts_relations() -> None:
    later = T0 + timedelta(hours=1)
    clean = epochs(_markers(), _markers(start=later, xact=1e6 + 10))
    assert clean.reasons == (EpochReason.restart,)
    assert not clean.statements_from_zero and not clean.relations_from_zero
    lost = epochs(_markers(), _markers(start=later, xact=12))
    assert lost.reasons == (EpochReason.stats_lost,)
    assert lost.relations_from_zero and not lost.statements_from_zero
    table = Row((16384,), ("public", "t", None), tuple([3.0] * len(TABLE.counters)), (1.0, 0.0, 8192.0))
    prev = Previous(2, True, tuple([2.0] * len(TABLE.counters)), (50.0, 50.0), None)
    [kept] = changes(TABLE, [table], {table.key: prev}, 7, clean)
    [restarted] = changes(TABLE, [table], {table.key: prev}, 7, lost)
    assert kept.deltas == tuple([1.0] * len(TABLE.counters))
    assert restarted.deltas == tuple([3.0] * len(TABLE.counters)) and restarted.from_zero


def test_a_database_stats_reset_alone_does_not_inflate_untouched_tables() -> None:
    e = epochs(_markers(), _markers(db_reset=T0 + timedelta(minutes=1), xact=1e6 + 1))
    assert e.reasons == (EpochReason.stats_reset,) and not e.relations_from_zero
    table = Row((16384,), ("public", "t", None), tuple([5.0] * len(TABLE.counters)), (1.0, 0.0, 8192.0))
    prev = Previous(2, True, tuple([4.0] * len(TABLE.counters)), (0.0, 0.0), None)
    [c] = changes(TABLE, [table], {table.key: prev}, 7, e)
    assert c.deltas == tuple([1.0] * len(TABLE.counters)) and not c.from_zero
