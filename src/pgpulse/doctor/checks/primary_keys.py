"""Tables without a primary key.

Without one, rows cannot be addressed reliably (ORMs need it to update or delete one row), duplicates creep
in, and logical replication cannot replicate UPDATE or DELETE (no replica identity). Threshold: every
ordinary or partitioned table in a user schema (not an extension's, not a partition: the parent is judged)
without a primary key is a warning — an info when a unique index over NOT NULL columns can be promoted
to one, since that key already exists in all but name.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity, qualified
from pgpulse.sql import quote_ident

SQL = """
SELECT n.nspname AS schemaname, c.relname AS table_name, c.reltuples::bigint AS estimated_rows,
       (SELECT ic.relname
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
          AND i.indexprs IS NULL AND i.indnkeyatts = i.indnatts
          AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull)
        ORDER BY i.indnatts, ic.relname LIMIT 1) AS promotable_index
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


class PrimaryKeysCheck:
    name = "primary_keys"
    title = "Tables without a primary key"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL):
            table = qualified(row["schemaname"], row["table_name"])
            index = row["promotable_index"]
            if index is not None:
                fix = f"ALTER TABLE {table} ADD PRIMARY KEY USING INDEX {quote_ident(index)};"
                note = f"{index} is unique over NOT NULL columns: promoting it is a catalog change, no rebuild."
            else:
                fix = f"ALTER TABLE {table} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;"
                note = (
                    "Or a PRIMARY KEY over the columns that identify a row. Adding a column with an identity "
                    "rewrites the table under an ACCESS EXCLUSIVE lock: on a large table build a unique index "
                    "CONCURRENTLY first and promote it with ADD PRIMARY KEY USING INDEX."
                )
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.info if index is not None else Severity.warning,
                    object=f"table {table}",
                    title=f"{table} has no primary key"
                    + (f" (unique index {index} could be one)" if index is not None else ""),
                    evidence={"estimated_rows": max(row["estimated_rows"], 0), "promotable_index": index},
                    fix=fix,
                    note=note,
                )
            )
        return findings
