"""Table bloat: pages full of dead or free space that every scan still reads (indexes: ``index_bloat``).

With pgstattuple installed we measure (``pgstattuple_approx``, on the 20 largest tables so the audit stays
fast); without it we estimate from the statistics the way the classic check_postgres query does: expected
pages from row count and average row width versus actual pages. VACUUM makes the space reusable; only
VACUUM FULL / pg_repack give it back. Threshold: tables of at least 1 MB that are at least 30 % bloat
(warning), 60 % (critical).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pgpulse.doctor.check import Context, Finding, Severity, pretty_bytes, qualified

MIN_BYTES = 1 << 20  # ignore relations under 1 MB: bloat there costs nothing measurable
TABLE_BLOAT = 0.3
LARGEST = 20

TABLES = """
SELECT c.oid, n.nspname AS schemaname, c.relname AS table_name, pg_relation_size(c.oid) AS size_bytes,
       c.reltuples, c.relpages, current_setting('block_size')::int AS block_size,
       COALESCE((SELECT sum(s.avg_width) FROM pg_stats s
                 WHERE s.schemaname = n.nspname AND s.tablename = c.relname), 0) AS row_width,
       COALESCE(substring(array_to_string(c.reloptions, ',') FROM 'fillfactor=([0-9]+)')::int, 100) AS fillfactor
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND pg_relation_size(c.oid) >= $1
ORDER BY pg_relation_size(c.oid) DESC
LIMIT $2
"""
MEASURE_TABLE = "SELECT dead_tuple_percent, approx_free_percent FROM pgstattuple_approx($1::bigint::oid::regclass)"


def estimated_table_bloat(reltuples: float, relpages: int, row_width: float, block_size: int, fill: int) -> float:
    """Fraction of the heap that is not live rows, from statistics (0 when unknown)."""
    if relpages <= 0 or reltuples <= 0 or row_width <= 0:
        return 0.0
    tuple_bytes = 24 + 4 + row_width  # header + line pointer + data
    usable = (block_size - 24) * fill / 100
    expected = max(1.0, reltuples * tuple_bytes / usable)
    return max(0.0, 1 - expected / relpages)


@dataclass
class BloatCheck:
    min_bytes: int = MIN_BYTES
    name: ClassVar[str] = "bloat"
    title: ClassVar[str] = "Table bloat"

    async def run(self, ctx: Context) -> list[Finding]:
        measured = "pgstattuple" in ctx.extensions
        findings = []
        for row in await ctx.conn.fetch(TABLES, self.min_bytes, LARGEST):
            table = qualified(row["schemaname"], row["table_name"])
            if measured:
                m = await ctx.conn.fetchrow(MEASURE_TABLE, row["oid"])
                fraction = (m["dead_tuple_percent"] + m["approx_free_percent"]) / 100
                method = "pgstattuple_approx"
            else:
                fraction = estimated_table_bloat(
                    row["reltuples"],
                    row["relpages"],
                    float(row["row_width"]),
                    row["block_size"],
                    row["fillfactor"],
                )
                method = "estimate from pg_stats (install pgstattuple to measure)"
            if fraction < TABLE_BLOAT:
                continue
            wasted = int(row["size_bytes"] * fraction)
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.critical if fraction >= 0.6 else Severity.warning,
                    object=f"table {table}",
                    title=f"{table} is ~{fraction:.0%} bloat "
                    f"({pretty_bytes(wasted)} of {pretty_bytes(row['size_bytes'])})",
                    evidence={
                        "size": pretty_bytes(row["size_bytes"]),
                        "bloat_fraction": round(fraction, 3),
                        "wasted_bytes": wasted,
                        "method": method,
                    },
                    fix=f"VACUUM (ANALYZE) {table};  -- makes the space reusable\n"
                    f"VACUUM FULL {table};  -- returns it to the OS, but takes an ACCESS EXCLUSIVE lock "
                    "(pg_repack does it online)",
                )
            )
        return findings
