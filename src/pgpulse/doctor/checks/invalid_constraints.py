"""Invalid constraints: foreign keys and CHECKs added ``NOT VALID`` and never validated.

``NOT VALID`` is the safe way to add a constraint to a large table (no full scan under a heavy lock), but
it is half of a two-step migration: until ``VALIDATE CONSTRAINT`` runs, rows written before it may violate
it, and the planner cannot use a CHECK for constraint exclusion. Threshold: every unvalidated constraint
(PgHero's ``invalid_constraints`` lists them all) is a warning.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity, qualified
from pgpulse.sql import quote_ident

SQL = """
SELECT n.nspname AS schemaname, c.relname AS table_name, k.conname, k.contype::text AS contype,
       pg_get_constraintdef(k.oid) AS definition,
       rn.nspname AS referenced_schema, r.relname AS referenced_table
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class r ON r.oid = k.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE NOT k.convalidated AND k.contype IN ('f', 'c')
ORDER BY 1, 2, 3
"""
KIND = {"f": "foreign key", "c": "check constraint"}


class InvalidConstraintsCheck:
    name = "invalid_constraints"
    title = "Constraints not validated (NOT VALID)"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL):
            table = qualified(row["schemaname"], row["table_name"])
            constraint = quote_ident(row["conname"])
            lock = "SHARE UPDATE EXCLUSIVE on the table"
            if row["contype"] == "f":
                lock += f" and ROW SHARE on {qualified(row['referenced_schema'], row['referenced_table'])}"
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"constraint {table}.{constraint}",
                    title=f"{KIND[row['contype']]} {constraint} on {table} is NOT VALID: "
                    "existing rows were never checked",
                    evidence={"definition": row["definition"]},
                    fix=f"ALTER TABLE {table} VALIDATE CONSTRAINT {constraint};",
                    note=f"Validation scans the table but takes only {lock}: reads and writes go on. It fails "
                    "on the first violating row: find and fix those rows first.",
                )
            )
        return findings
