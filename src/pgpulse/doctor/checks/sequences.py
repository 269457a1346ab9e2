"""Sequences and integer keys near overflow: a sequence's last value against the largest value the *column
it feeds* can hold.

A ``bigserial`` or a ``GENERATED … AS IDENTITY`` column on an ``integer`` table column (a migration that
changed one but not the other, a hand-written ``DEFAULT nextval('…')``) overflows at 2,147,483,647 however
large the sequence may go: every INSERT then fails with "integer out of range". The column a sequence feeds
is found the way PostgreSQL itself records it, in ``pg_depend``: an owned sequence (serial, identity)
depends on its column, and a column ``DEFAULT nextval(…)`` depends on the sequence it calls.

Thresholds (PgHero's sequence danger is 90 %): at least ``WARN_FRACTION`` (75 %) of the limit used is a
warning — widening a large table takes planning —, at least ``CRITICAL_FRACTION`` (90 %) critical. The
limit is the smaller of the sequence's MAXVALUE and the column type's maximum. Descending sequences and
columns of other types (numeric) are not judged.
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity, qualified
from pgpulse.sql import quote_ident

WARN_FRACTION = 0.75
CRITICAL_FRACTION = 0.90
TYPE_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}

SQL = """
WITH feeds AS (
    -- serial and identity columns: the sequence is owned by (depends on) the column
    SELECT d.objid AS seq_oid, d.refobjid AS table_oid, d.refobjsubid AS attnum
    FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
    UNION
    -- any column DEFAULT nextval('seq'): the default expression depends on the sequence
    SELECT d.refobjid, ad.adrelid, ad.adnum
    FROM pg_depend d
    JOIN pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
)
SELECT sn.nspname AS seq_schema, s.relname AS seq_name, n.nspname AS schemaname, c.relname AS table_name,
       a.attname AS column_name, format_type(a.atttypid, NULL) AS column_type, a.attidentity <> '' AS identity,
       format_type(q.seqtypid, NULL) AS seq_type, q.seqincrement AS increment, q.seqmax AS seq_max,
       ps.last_value
FROM feeds f
JOIN pg_class s ON s.oid = f.seq_oid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_sequence q ON q.seqrelid = s.oid
JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
JOIN pg_class c ON c.oid = f.table_oid AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = f.table_oid AND a.attnum = f.attnum AND NOT a.attisdropped
WHERE ps.last_value IS NOT NULL AND q.seqincrement > 0
ORDER BY 1, 2, 3, 4, 5
"""


class SequencesCheck:
    name = "sequences"
    title = "Sequences and integer keys near overflow"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL):
            column_max = TYPE_MAX.get(row["column_type"])
            if column_max is None:
                continue
            limit = min(column_max, row["seq_max"])
            used = row["last_value"] / limit
            if used < WARN_FRACTION:
                continue
            table = qualified(row["schemaname"], row["table_name"])
            column = quote_ident(row["column_name"])
            sequence = qualified(row["seq_schema"], row["seq_name"])
            column_bound = column_max <= row["seq_max"]
            fixes = []
            if row["column_type"] != "bigint":
                # an identity column's sequence follows the column's new type
                fixes.append(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE bigint;")
            if row["seq_type"] != "bigint" and not (row["identity"] and row["column_type"] != "bigint"):
                fixes.append(f"ALTER SEQUENCE {sequence} AS bigint;")
            if row["seq_max"] < TYPE_MAX["bigint"] and row["seq_type"] == "bigint":
                fixes.append(f"ALTER SEQUENCE {sequence} NO MAXVALUE;")
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.critical if used >= CRITICAL_FRACTION else Severity.warning,
                    object=f"column {table}.{column}",
                    title=f"{table}.{column} ({row['column_type']}) is fed by sequence {sequence} at "
                    f"{row['last_value']:,}: {used:.1%} of "
                    + (f"the {row['column_type']} maximum" if column_bound else "the sequence's MAXVALUE")
                    + f" {limit:,}",
                    evidence={
                        "last_value": row["last_value"],
                        "limit": limit,
                        "used_fraction": round(used, 4),
                        "remaining": limit - row["last_value"],
                        "column_type": row["column_type"],
                        "sequence_type": row["seq_type"],
                        "sequence_max": row["seq_max"],
                    },
                    fix="\n".join(fixes),
                    note=(
                        "ALTER COLUMN … TYPE bigint rewrites the table and all its indexes under an ACCESS "
                        "EXCLUSIVE lock: reads and writes wait for the whole rewrite. On a large table add a "
                        "bigint column, backfill it in batches, and swap it in one short transaction; widen "
                        "the foreign keys that reference this column too."
                        if row["column_type"] != "bigint"
                        else "Changing the sequence is a catalog update: instant, no rewrite."
                    ),
                )
            )
        return findings
