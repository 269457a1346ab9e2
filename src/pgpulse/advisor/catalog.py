"""What the advisor needs to know about a table: size, column statistics and the indexes it already has."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg

from pgpulse.sql import quote_ident, quote_qualified

if TYPE_CHECKING:
    from pgpulse.advisor.candidates import Candidate

TABLE_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind, c.reltuples::float8 AS reltuples, c.relpages,
       pg_total_relation_size(c.oid) AS total_bytes,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0) AS writes,
       coalesce(s.seq_scan + coalesce(s.idx_scan, 0), 0) AS scans
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm')
"""

COLUMNS_SQL = """
SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod) AS type,
       s.n_distinct, s.null_frac,
       (s.most_common_vals::text)::text[] AS mcv, s.most_common_freqs AS mcf,
       (s.histogram_bounds::text)::text[] AS histogram
  FROM pg_attribute a
  LEFT JOIN pg_stats s ON s.schemaname = $2 AND s.tablename = $3 AND s.attname = a.attname
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum  -- column order: ORDER BY 1 over SELECT * needs it
"""

INDEXES_SQL = """
SELECT ic.relname AS name, am.amname AS method, i.indisvalid AS valid, i.indpred IS NOT NULL AS partial,
       i.indkey::int2[] AS keys, i.indoption::int2[] AS options, i.indnkeyatts AS key_count,
       pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = $1
"""


@dataclass(frozen=True)
class ColumnStats:
    name: str
    type: str
    n_distinct: float | None  # pg_stats convention: > 0 a count, < 0 a fraction of the rows
    null_frac: float | None
    mcv: tuple[str, ...] = ()
    mcf: tuple[float, ...] = ()
    histogram: tuple[str, ...] = ()

    def distinct(self, rows: float) -> float:
        """Estimated number of distinct values (higher = more selective for equality)."""
        if self.n_distinct is None:
            return 0.0
        return self.n_distinct if self.n_distinct > 0 else -self.n_distinct * max(rows, 1.0)


@dataclass(frozen=True)
class ExistingIndex:
    name: str
    method: str
    valid: bool
    partial: bool
    columns: tuple[tuple[str, bool], ...]  # leading plain key columns (name, desc); stops at an expression
    definition: str


@dataclass
class TableInfo:
    oid: int
    schema: str
    name: str
    rows: float
    pages: int
    total_bytes: int
    writes: int
    scans: int
    kind: str = "r"  # pg_class.relkind: "r" table, "p" partitioned table, "m" materialized view
    analyzed: bool = True  # reltuples is -1 until the first VACUUM/ANALYZE: no statistics to cost with
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    indexes: list[ExistingIndex] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        """The table's name as shown to users (``public.`` left out)."""
        return quote_qualified(None if self.schema == "public" else self.schema, self.name)

    @property
    def fully_qualified(self) -> str:
        """The table's name as written in statements pgpulse runs (whatever the session's search_path)."""
        return quote_qualified(self.schema, self.name)


NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers
HASH_CHARS = 8


def index_name(table: str, candidate: Candidate, suffix: str = "") -> str:
    """``ix_<table>_<columns>``, at most 63 bytes: a name that would be cut keeps a hash of the whole name, so
    two long names that share their first 63 bytes stay distinct (PostgreSQL would silently make them one)."""
    words = [re.sub(r"\W+", "_", c.name).strip("_") if c.expression else c.name for c in candidate.columns]
    full = "ix_" + table + "_" + "_".join(words)
    # a partial, covering or GIN index is not the plain B-tree of the same keys: its name says so
    full += ("_partial" if candidate.where else "") + ("_incl" if candidate.include else "")
    full += "" if candidate.method == "btree" else f"_{candidate.method}"
    if len((full + suffix).encode()) <= NAME_BYTES:
        return full + suffix
    digest = "_" + hashlib.blake2b(full.encode(), digest_size=8).hexdigest()[:HASH_CHARS]
    room = NAME_BYTES - len((digest + suffix).encode())
    return full.encode()[:room].decode(errors="ignore") + digest + suffix


def create_index_sql(
    candidate: Candidate,
    name: str | None = None,
    *,
    concurrently: bool = False,
    only: bool = False,
    table: str | None = None,
) -> str:
    """``CREATE INDEX`` for a candidate, every identifier quoted by the one helper (``"Order"``, ``"user"``).

    ``only`` builds the index on a partitioned table's parent alone (``ON ONLY``: invalid until every
    partition's index is attached); ``table`` overrides the table written (a partition, or the fully qualified
    name --apply uses)."""
    columns = candidate.column_list()  # identifiers quoted; an expression key in parentheses
    how = "CONCURRENTLY " if concurrently else ""
    on = "ONLY " if only else ""
    name = quote_ident(name or index_name(candidate.table.name, candidate))
    using = "" if candidate.method == "btree" else f" USING {candidate.method}"
    include = f" INCLUDE ({', '.join(quote_ident(c) for c in candidate.include)})" if candidate.include else ""
    where = f" WHERE {candidate.where}" if candidate.where else ""
    return f"CREATE INDEX {how}{name} ON {on}{table or candidate.table.qualified}{using} ({columns}){include}{where}"


async def load_table(conn: asyncpg.Connection, name: str, schema: str | None = None) -> TableInfo | None:
    regclass = quote_qualified(schema, name)
    row = await conn.fetchrow(TABLE_SQL, regclass)
    if row is None:
        return None
    info = TableInfo(
        oid=row["oid"],
        schema=row["nspname"],
        name=row["relname"],
        rows=max(row["reltuples"], 0.0),
        pages=row["relpages"],
        total_bytes=row["total_bytes"],
        writes=row["writes"],
        scans=row["scans"],
        kind=row["relkind"],
        analyzed=row["reltuples"] >= 0,
    )
    by_number: dict[int, str] = {}
    for col in await conn.fetch(COLUMNS_SQL, info.oid, info.schema, info.name):
        by_number[col["attnum"]] = col["attname"]
        info.columns[col["attname"]] = ColumnStats(
            name=col["attname"],
            type=col["type"],
            n_distinct=col["n_distinct"],
            null_frac=col["null_frac"],
            mcv=tuple(col["mcv"] or ()),
            mcf=tuple(col["mcf"] or ()),
            histogram=tuple(col["histogram"] or ()),
        )
    for ix in await conn.fetch(INDEXES_SQL, info.oid):
        columns: list[tuple[str, bool]] = []
        for key, option in zip(list(ix["keys"])[: ix["key_count"]], ix["options"], strict=False):
            if key == 0:
                break  # an expression column: what follows is not a plain prefix any more
            columns.append((by_number[key], bool(option & 1)))
        info.indexes.append(
            ExistingIndex(ix["name"], ix["method"], ix["valid"], ix["partial"], tuple(columns), ix["definition"])
        )
    return info
