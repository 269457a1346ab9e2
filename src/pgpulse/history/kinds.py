"""What the history keeps for each kind of series: its counters (turned into deltas), gauges (kept as read) and
the counters whose running total is stored on every point (so a window's sum is two index probes, not a scan).

One description drives the snapshot reader, the delta computation, the store's COPY column lists and the
retention roll-ups, so a counter added here flows through all of them. Column names are ours (constants), and
are still quoted with :func:`pgpulse.sql.quote_ident` wherever they reach SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SCHEMA = "pgpulse_history"
TAG = "/* pgpulse:history */"


class Kind(StrEnum):
    statement = "statement"
    table = "table"
    index_ = "index"  # not `index`: that would shadow str.index
    database = "database"


@dataclass(frozen=True)
class KindSpec:
    kind: Kind
    point_table: str
    counters: tuple[str, ...]
    gauges: tuple[str, ...]
    running: tuple[str, ...]  # counters whose running total ("cum_<name>") each point carries
    dense: bool  # a point on every snapshot (relations: gauges matter) or only when something was counted

    def cum(self, counter: str) -> str:
        return f"cum_{counter}"

    @property
    def cum_columns(self) -> tuple[str, ...]:
        return tuple(self.cum(c) for c in self.running)


STATEMENT = KindSpec(
    Kind.statement,
    "statement_point",
    counters=(
        "calls",
        "total_exec_time",
        "exec_time_sumsq",  # sum of squared execution times, from calls/mean/stddev: a window's stddev is exact
        "rows",
        "shared_blks_hit",
        "shared_blks_read",
        "shared_blks_dirtied",
        "shared_blks_written",
        "local_blks_hit",
        "local_blks_read",
        "local_blks_dirtied",
        "local_blks_written",
        "temp_blks_read",
        "temp_blks_written",
        "blk_read_time",
        "blk_write_time",
        "wal_records",
        "wal_bytes",
    ),
    gauges=(),
    running=("calls", "total_exec_time", "rows"),
    dense=False,
)

TABLE = KindSpec(
    Kind.table,
    "table_point",
    counters=(
        "seq_scan",
        "seq_tup_read",
        "idx_scan",
        "idx_tup_fetch",
        "n_tup_ins",
        "n_tup_upd",
        "n_tup_del",
        "n_tup_hot_upd",
        "vacuum_count",
        "autovacuum_count",
        "analyze_count",
        "autoanalyze_count",
    ),
    gauges=("n_live_tup", "n_dead_tup", "total_bytes"),
    running=("seq_scan", "idx_scan"),
    dense=True,
)

INDEX = KindSpec(
    Kind.index_,
    "index_point",
    counters=("idx_scan", "idx_tup_read", "idx_tup_fetch"),
    gauges=("size_bytes",),
    running=("idx_scan",),
    dense=True,
)

DATABASE = KindSpec(
    Kind.database,
    "database_point",
    counters=(
        "xact_commit",
        "xact_rollback",
        "blks_read",
        "blks_hit",
        "tup_returned",
        "tup_fetched",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
        "conflicts",
        "temp_files",
        "temp_bytes",
        "deadlocks",
    ),
    gauges=("numbackends", "size_bytes"),
    running=("xact_commit",),
    dense=True,
)

SPECS: dict[Kind, KindSpec] = {s.kind: s for s in (STATEMENT, TABLE, INDEX, DATABASE)}
