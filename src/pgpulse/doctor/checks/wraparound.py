"""Transaction ID wraparound: how close the database and its oldest tables are to the 2^31 XID horizon.

Past ~2 billion transactions without freezing, PostgreSQL stops accepting writes to protect data. Autovacuum
freezes tables once their age passes ``autovacuum_freeze_max_age`` (200M by default); an age far above
that means freezing is blocked (long transactions, abandoned replication slots, autovacuum disabled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pgpulse.doctor.check import Context, Finding, Severity, qualified

WRAP = 2**31
SQL_DB = "SELECT age(datfrozenxid) AS age FROM pg_database WHERE datname = current_database()"
SQL_TABLES = """
SELECT n.nspname AS schemaname, c.relname AS table_name, age(c.relfrozenxid) AS age
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 't') AND age(c.relfrozenxid) > $1
ORDER BY age(c.relfrozenxid) DESC
LIMIT 10
"""


@dataclass
class WraparoundCheck:
    min_age: int | None = None  # default: 1.5 × autovacuum_freeze_max_age
    name: ClassVar[str] = "wraparound"
    title: ClassVar[str] = "Transaction ID wraparound"

    async def run(self, ctx: Context) -> list[Finding]:
        freeze_max_age = int(await ctx.conn.fetchval("SELECT current_setting('autovacuum_freeze_max_age')"))
        db_age = int(await ctx.conn.fetchval(SQL_DB))
        findings = []
        threshold = self.min_age if self.min_age is not None else int(freeze_max_age * 1.5)
        if db_age > threshold:
            fraction = db_age / WRAP
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.critical if fraction > 0.5 else Severity.warning,
                    object=f"database {ctx.database}",
                    title=f"database XID age is {db_age:,} ({fraction:.0%} of the way to wraparound)",
                    evidence={"age": db_age, "autovacuum_freeze_max_age": freeze_max_age},
                    fix="VACUUM (FREEZE, VERBOSE);  -- per table, oldest first; find what blocks autovacuum",
                    note="Check for long-running transactions, prepared transactions and stale "
                    "replication slots: they hold the freeze horizon back.",
                )
            )
        for row in await ctx.conn.fetch(SQL_TABLES, threshold):
            table = qualified(row["schemaname"], row["table_name"])
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"table {table}",
                    title=f"{table} has XID age {row['age']:,} (autovacuum_freeze_max_age is {freeze_max_age:,})",
                    evidence={"age": row["age"], "autovacuum_freeze_max_age": freeze_max_age},
                    fix=f"VACUUM (FREEZE, VERBOSE) {table};",
                )
            )
        return findings
