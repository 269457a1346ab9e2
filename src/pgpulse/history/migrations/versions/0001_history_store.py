"""The history store: targets, snapshots, marks, series and their points (deltas + running totals + gauges).

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Points carry ``bucket_end`` in their primary key ``(series_id, bucket_end)``: the diff reads a series' running
total at a moment as "the last point at or before it", one index probe per series (index-only: the running
totals are INCLUDEd in the key), so a 30-day window costs the same as a 2-hour one. ``(resolution_s,
bucket_end)`` lets retention find exactly the points to roll up (the fine ones past a cut-off) without reading
the coarse ones already rolled. Points have no foreign key to their series (5,000 FK checks per snapshot for
nothing: the store deletes a target's points itself).
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TAG = "/* pgpulse:history */"

STATEMENT_COUNTERS = [
    "calls",
    "total_exec_time",
    "exec_time_sumsq",
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
]
TABLE_COUNTERS = [
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
]
INDEX_COUNTERS = ["idx_scan", "idx_tup_read", "idx_tup_fetch"]
DATABASE_COUNTERS = [
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
]


def _point_table(name: str, counters: list[str], running: list[str], gauges: list[str]) -> str:
    # The running totals ride in the primary key's leaf pages: the diff's probes become index-only scans.
    include = ", ".join(f"cum_{c}" for c in running)
    columns = [f"{c} float8 NOT NULL" for c in counters]
    columns += [f"cum_{c} float8 NOT NULL" for c in running]
    columns += [f"{g} float8 NOT NULL" for g in gauges]
    body = ",\n  ".join(columns)
    return f"""{TAG}
CREATE TABLE pgpulse_history.{name} (
  series_id bigint NOT NULL,
  bucket_start timestamptz NOT NULL,
  bucket_end timestamptz NOT NULL,
  resolution_s integer NOT NULL,   -- 0: one snapshot interval; else the roll-up bucket in seconds
  from_zero boolean NOT NULL,      -- the interval counted from zero (a reset, a restart, a new entry)
  {body},
  PRIMARY KEY (series_id, bucket_end) INCLUDE ({include})
)"""


def _point_table_and_index(name: str, counters: list[str], running: list[str], gauges: list[str]) -> None:
    op.execute(_point_table(name, counters, running, gauges))
    op.execute(f"{TAG} CREATE INDEX {name}_retention ON pgpulse_history.{name} (resolution_s, bucket_end)")


def upgrade() -> None:
    op.execute(f"""{TAG}
CREATE TABLE pgpulse_history.target (
  target_id serial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
)""")
    op.execute(f"""{TAG}
CREATE TABLE pgpulse_history.snapshot (
  snapshot_id bigserial PRIMARY KEY,
  target_id integer NOT NULL REFERENCES pgpulse_history.target ON DELETE CASCADE,
  taken_at timestamptz NOT NULL,
  epoch integer NOT NULL,
  epoch_reasons text[] NOT NULL,
  server_version_num integer NOT NULL,
  postmaster_start timestamptz NOT NULL,
  db_stats_reset timestamptz,
  pgss_stats_reset timestamptz,
  pgss_dealloc bigint,
  pgss_available boolean NOT NULL,
  xact_commit float8 NOT NULL,
  statements integer NOT NULL,
  tables integer NOT NULL,
  indexes integer NOT NULL,
  settings jsonb NOT NULL,
  UNIQUE (target_id, taken_at)
)""")
    op.execute(f"""{TAG}
CREATE TABLE pgpulse_history.mark (
  target_id integer NOT NULL REFERENCES pgpulse_history.target ON DELETE CASCADE,
  name text NOT NULL,
  at timestamptz NOT NULL,
  PRIMARY KEY (target_id, name)
)""")
    op.execute(f"{TAG} CREATE SEQUENCE pgpulse_history.series_id_seq")
    op.execute(f"""{TAG}
CREATE TABLE pgpulse_history.statement_series (
  series_id bigint PRIMARY KEY DEFAULT nextval('pgpulse_history.series_id_seq'),
  target_id integer NOT NULL REFERENCES pgpulse_history.target ON DELETE CASCADE,
  queryid bigint NOT NULL,
  userid oid NOT NULL,
  dbid oid NOT NULL,
  toplevel boolean NOT NULL,
  query text NOT NULL,
  last_snapshot_id bigint NOT NULL,  -- the last snapshot that changed this row
  present boolean NOT NULL DEFAULT true,  -- in the target's latest snapshot (else: the next one counts from zero)
  last_raw bytea NOT NULL,         -- the counters as last read (little-endian float64s), for the next delta
  running bytea NOT NULL,          -- running totals of the counters points carry as cum_* (same encoding)
  since timestamptz,               -- pg_stat_statements 17+: the entry's stats_since
  last_counted_at timestamptz,     -- end of the last interval that counted anything
  UNIQUE (target_id, queryid, userid, dbid, toplevel)
) WITH (fillfactor = 50)""")  # rewritten on every snapshot: room on the page for HOT updates
    op.execute(f"""{TAG}
CREATE TABLE pgpulse_history.relation_series (
  series_id bigint PRIMARY KEY DEFAULT nextval('pgpulse_history.series_id_seq'),
  target_id integer NOT NULL REFERENCES pgpulse_history.target ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('table', 'index', 'database')),
  relid oid NOT NULL,
  schemaname text,
  relname text NOT NULL,
  indexname text,
  last_snapshot_id bigint NOT NULL,
  present boolean NOT NULL DEFAULT true,
  last_raw bytea NOT NULL,
  running bytea NOT NULL,
  since timestamptz,
  last_counted_at timestamptz,
  UNIQUE (target_id, kind, relid)
) WITH (fillfactor = 50)""")
    _point_table_and_index("statement_point", STATEMENT_COUNTERS, ["calls", "total_exec_time", "rows"], [])
    _point_table_and_index(
        "table_point", TABLE_COUNTERS, ["seq_scan", "idx_scan"], ["n_live_tup", "n_dead_tup", "total_bytes"]
    )
    _point_table_and_index("index_point", INDEX_COUNTERS, ["idx_scan"], ["size_bytes"])
    _point_table_and_index("database_point", DATABASE_COUNTERS, ["xact_commit"], ["numbackends", "size_bytes"])


def downgrade() -> None:
    for table in (
        "database_point",
        "index_point",
        "table_point",
        "statement_point",
        "relation_series",
        "statement_series",
        "mark",
        "snapshot",
        "target",
    ):
        op.execute(f"{TAG} DROP TABLE pgpulse_history.{table}")
    op.execute(f"{TAG} DROP SEQUENCE pgpulse_history.series_id_seq")
