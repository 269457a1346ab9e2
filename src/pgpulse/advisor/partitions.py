"""Statistics of a partitioned table from its partitions, when the parent has none of its own.

Autovacuum analyzes partitions but never a partitioned parent, so on a live database the parent's ``reltuples``
is -1 and ``pg_stats`` has nothing for it, although the planner (which plans each partition with the
partition's statistics) costs its queries fine. The advisor then reads the row count as the sum over the leaf
partitions and the column statistics from the largest analyzed one — enough to order key columns and pick
representative values.
"""

from __future__ import annotations

import asyncpg

from pgpulse.advisor.catalog import TableInfo, load_table

LEAVES_SQL = """
SELECT n.nspname, c.relname, c.reltuples::float8 AS reltuples, c.relpages
  FROM pg_partition_tree($1::oid::regclass) t
  JOIN pg_class c ON c.oid = t.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE t.isleaf
"""


async def with_partition_stats(conn: asyncpg.Connection, info: TableInfo | None) -> TableInfo | None:
    """``info`` itself when it has statistics (or is no partitioned table); else filled in from its leaves."""
    if info is None or info.analyzed:
        return info
    leaves = [r for r in await conn.fetch(LEAVES_SQL, info.oid) if r["reltuples"] >= 0]
    if not leaves:
        return info  # no partition analyzed either: the advisor says to run ANALYZE
    largest = max(leaves, key=lambda r: r["reltuples"])
    leaf = await load_table(conn, largest["relname"], largest["nspname"])
    if leaf is None:
        return info
    info.rows = sum(r["reltuples"] for r in leaves)
    info.pages = sum(r["relpages"] for r in leaves)
    info.columns = {name: leaf.columns.get(name, stats) for name, stats in info.columns.items()}
    info.analyzed = True
    return info
