"""Invalid indexes: left behind by a CREATE INDEX CONCURRENTLY (or REINDEX CONCURRENTLY) that failed.

An invalid index is never used for reads but is still maintained on every write: all of the cost, none
of the benefit. Builds still in progress are also invalid; those are skipped.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity, pretty_bytes, qualified

SQL = """
SELECT n.nspname AS schemaname, t.relname AS table_name, c.relname AS index_name,
       pg_get_indexdef(i.indexrelid) AS definition, pg_relation_size(i.indexrelid) AS size_bytes
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE NOT i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
ORDER BY 1, 2, 3
"""


class InvalidIndexesCheck:
    name = "invalid_indexes"
    title = "Invalid indexes"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL):
            name = qualified(row["schemaname"], row["index_name"])
            rebuild = (
                row["definition"]
                .replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
                .replace("CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX CONCURRENTLY", 1)
            )
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.critical,
                    object=f"index {name}",
                    title=f"index {name} on {row['table_name']} is INVALID (a failed concurrent build)",
                    evidence={"definition": row["definition"], "size": pretty_bytes(row["size_bytes"])},
                    fix=f"DROP INDEX CONCURRENTLY {name};\n{rebuild};",
                    note="Find why the build failed first (duplicate keys for a unique index, a deadlock, "
                    "a cancelled statement) or the rebuild fails the same way.",
                )
            )
        return findings
