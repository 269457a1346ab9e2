"""Foreign keys without an index on the referencing columns.

PostgreSQL indexes the referenced side (it must be unique) but not the referencing one. Without that
index, every DELETE of a parent row — and every UPDATE of its key — scans the whole child table to check
for children, under a lock; joins from parent to children scan it too.

Threshold: a foreign key whose columns are not the leading columns (in any order) of a valid, non-partial
index is a warning when the referenced table has seen deletes or non-HOT updates (``n_tup_del``,
``n_tup_upd − n_tup_hot_upd``: a key can only change in a non-HOT update) or the referencing table has at
least ``MIN_ROWS`` (10,000) live rows. A small child of a parent that is never deleted from costs nothing.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity, qualified
from pgpulse.sql import quote_ident

MIN_ROWS = 10_000
MAX_IDENTIFIER = 63

SQL = """
SELECT n.nspname AS schemaname, c.relname AS table_name, k.conname,
       array_agg(a.attname ORDER BY x.ord) AS columns,
       rn.nspname AS referenced_schema, r.relname AS referenced_table,
       COALESCE(max(s.n_live_tup), 0) AS referencing_rows,
       COALESCE(max(rs.n_tup_del), 0) AS referenced_deletes,
       COALESCE(max(rs.n_tup_upd - rs.n_tup_hot_upd), 0) AS referenced_key_updates
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = k.confrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS x(attnum, ord)
JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
LEFT JOIN pg_stat_user_tables rs ON rs.relid = r.oid
WHERE k.contype = 'f' AND NOT c.relispartition
  AND NOT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = k.conrelid AND i.indisvalid AND i.indpred IS NULL
        AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey
        AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] <@ k.conkey
  )
GROUP BY n.nspname, c.relname, k.conname, rn.nspname, r.relname
ORDER BY 1, 2, 3
"""


def index_name(table: str, columns: list[str]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"[:MAX_IDENTIFIER]


class ForeignKeyIndexesCheck:
    name = "foreign_key_indexes"
    title = "Foreign keys without an index"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL):
            churn = row["referenced_deletes"] + row["referenced_key_updates"]
            if churn == 0 and row["referencing_rows"] < MIN_ROWS:
                continue
            table = qualified(row["schemaname"], row["table_name"])
            parent = qualified(row["referenced_schema"], row["referenced_table"])
            columns = list(row["columns"])
            quoted = ", ".join(quote_ident(c) for c in columns)
            why = (
                f"{parent} has seen {row['referenced_deletes']:,} deletes and "
                f"{row['referenced_key_updates']:,} non-HOT updates: each scans {table}"
                if churn
                else f"{table} has {row['referencing_rows']:,} rows to scan for each parent delete or join"
            )
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"constraint {table}.{quote_ident(row['conname'])}",
                    title=f"foreign key {table} ({quoted}) → {parent} has no index on {table} ({quoted})",
                    evidence={
                        "referencing_rows": row["referencing_rows"],
                        "referenced_deletes": row["referenced_deletes"],
                        "referenced_key_updates": row["referenced_key_updates"],
                    },
                    fix=f"CREATE INDEX CONCURRENTLY {quote_ident(index_name(row['table_name'], columns))} "
                    f"ON {table} ({quoted});",
                    note=why + ". CONCURRENTLY builds it without blocking writes (outside a transaction).",
                )
            )
        return findings
