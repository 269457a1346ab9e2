"""Btree index bloat: leaf pages left mostly empty by deletes and updates, still read by every scan.

With pgstattuple installed we measure (``pgstatindex``: average leaf density). Without it we estimate
from the statistics, the way PgHero's ``index_bloat`` (ioguix's query) does: the pages the index would
need for its ``reltuples`` entries — each a MAXALIGNed tuple (8-byte header, a null bitmap when a column
has NULLs, the columns' ``avg_width`` × (1 − ``null_frac``) from pg_stats) plus a 4-byte line pointer, packed
at the index's fillfactor (90 % for btree) into pages less their header and btree's special space — against
the pages it has. Expression indexes (no pg_stats for them) and indexes on never-analyzed tables are not
estimated. ``REINDEX CONCURRENTLY`` rebuilds it compactly without blocking writes.

Thresholds: indexes of at least ``min_bytes`` (1 MB; PgHero's dashboard uses 100 MB) whose leaf density
is under 50 % (measured) or that are estimated at least 50 % bloat, are a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from pgpulse.doctor.check import Context, Finding, Severity, pretty_bytes, qualified

MIN_BYTES = 1 << 20
LEAF_DENSITY = 50.0
ESTIMATED_BLOAT = 0.5
LARGEST = 50
MAXALIGN = 8
PAGE_HEADER = 24
BTREE_SPECIAL = 16
LINE_POINTER = 4

INDEXES = """
SELECT i.indexrelid AS oid, n.nspname AS schemaname, ic.relname AS index_name, t.relname AS table_name,
       ic.reltuples, pg_relation_size(i.indexrelid) AS size_bytes, current_setting('block_size')::int AS block_size,
       COALESCE(substring(array_to_string(ic.reloptions, ',') FROM 'fillfactor=([0-9]+)')::int, 90) AS fillfactor,
       s.data_width, s.max_null_frac, s.columns_with_stats,
       (SELECT count(DISTINCT k) FROM unnest(i.indkey::int2[]) AS k) AS columns
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN LATERAL (
    SELECT sum((1 - st.null_frac) * st.avg_width)::float AS data_width, max(st.null_frac)::float AS max_null_frac,
           count(*) AS columns_with_stats
    FROM pg_attribute a
    JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = t.relname AND st.attname = a.attname
    WHERE a.attrelid = t.oid AND a.attnum = ANY (i.indkey::int2[])
) s ON true
WHERE am.amname = 'btree' AND i.indisvalid AND i.indexprs IS NULL
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND pg_relation_size(i.indexrelid) >= $1
ORDER BY pg_relation_size(i.indexrelid) DESC
LIMIT $2
"""
MEASURE = "SELECT avg_leaf_density, leaf_fragmentation FROM pgstatindex($1::bigint::oid::regclass)"


def _align(size: float) -> int:
    return math.ceil(size / MAXALIGN) * MAXALIGN


def expected_index_pages(entries: float, data_width: float, has_nulls: bool, block_size: int, fillfactor: int) -> int:
    """Pages a freshly built btree needs for ``entries`` tuples of ``data_width`` bytes (plus the meta page)."""
    tuple_bytes = _align(8 + (MAXALIGN if has_nulls else 0) + data_width) + LINE_POINTER
    per_page = (block_size - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100 / tuple_bytes
    return math.ceil(max(entries, 0) / per_page) + 1


@dataclass
class IndexBloatCheck:
    min_bytes: int = MIN_BYTES
    name: ClassVar[str] = "index_bloat"
    title: ClassVar[str] = "Index bloat"

    async def run(self, ctx: Context) -> list[Finding]:
        measured = "pgstattuple" in ctx.extensions
        findings = []
        for row in await ctx.conn.fetch(INDEXES, self.min_bytes, LARGEST):
            name = qualified(row["schemaname"], row["index_name"])
            size = row["size_bytes"]
            if measured:
                m = await ctx.conn.fetchrow(MEASURE, row["oid"])
                density = float(m["avg_leaf_density"])
                if density >= LEAF_DENSITY or density != density:  # NaN: an empty index
                    continue
                fraction = 1 - density / 100
                evidence = {"avg_leaf_density": density, "leaf_fragmentation": m["leaf_fragmentation"],
                            "method": "pgstatindex"}  # fmt: skip
                shape = f"leaves are {density:.0f}% full"
            else:
                if row["columns_with_stats"] != row["columns"] or row["reltuples"] < 0:
                    continue  # not analyzed: nothing to estimate from
                expected = expected_index_pages(
                    row["reltuples"], row["data_width"], row["max_null_frac"] > 0, row["block_size"], row["fillfactor"]
                )
                pages = size // row["block_size"]
                fraction = max(0.0, 1 - expected / max(pages, 1))
                if fraction < ESTIMATED_BLOAT:
                    continue
                evidence = {"expected_pages": expected, "pages": pages,
                            "method": "estimate from pg_stats (install pgstattuple to measure)"}  # fmt: skip
                shape = f"is ~{fraction:.0%} bloat by estimate"
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"index {name}",
                    title=f"index {name} on {row['table_name']} {shape} "
                    f"(~{pretty_bytes(size * fraction)} of {pretty_bytes(size)} wasted)",
                    evidence={**evidence, "size": pretty_bytes(size), "bloat_fraction": round(fraction, 3)},
                    fix=f"REINDEX INDEX CONCURRENTLY {name};",
                    note="REINDEX CONCURRENTLY needs free disk for a second copy while it builds.",
                )
            )
        return findings
