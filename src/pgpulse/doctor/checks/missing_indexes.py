"""Missing-index signals: tables read mostly by sequential scans over many rows.

A sequential scan of a large table on every request is the classic "fast in dev, slow in production"
query: it grows with the table. The signal is statistical (``seq_tup_read`` per scan, index vs sequential
scans); the statements that cause it come from pg_stat_statements when available, and ``pgpulse advise``
turns them into a verified index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from pgpulse.doctor.check import Context, Finding, Severity, qualified
from pgpulse.sql import redact_sql

MIN_ROWS = 10_000  # smaller tables are cheap to scan; an index rarely wins
MIN_AVG_ROWS_PER_SCAN = 5_000
MIN_SEQ_SCANS = 10

SQL = """
SELECT schemaname, relname AS table_name, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) AS idx_scan,
       n_live_tup, seq_tup_read / GREATEST(seq_scan, 1) AS avg_rows_per_scan,
       pg_total_relation_size(relid) AS size_bytes
FROM pg_stat_user_tables
WHERE n_live_tup >= $1
  AND seq_scan >= $3
  AND seq_tup_read / GREATEST(seq_scan, 1) >= $2
  AND seq_scan > COALESCE(idx_scan, 0)
ORDER BY seq_tup_read DESC
LIMIT 20
"""

STATEMENTS = """
SELECT query, calls, total_exec_time, mean_exec_time, rows
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query ~* $1
  AND query !~* '^\\s*(explain|analyze|vacuum|create|alter|drop|copy|truncate)'
ORDER BY total_exec_time DESC
LIMIT 3
"""


@dataclass
class MissingIndexesCheck:
    min_rows: int = MIN_ROWS
    min_avg_rows_per_scan: int = MIN_AVG_ROWS_PER_SCAN
    min_seq_scans: int = MIN_SEQ_SCANS
    name: ClassVar[str] = "missing_indexes"
    title: ClassVar[str] = "Missing-index signals"

    async def run(self, ctx: Context) -> list[Finding]:
        rows = await ctx.conn.fetch(SQL, self.min_rows, self.min_avg_rows_per_scan, self.min_seq_scans)
        findings = []
        statements_available = "pg_stat_statements" in ctx.extensions
        for row in rows:
            table = qualified(row["schemaname"], row["table_name"])
            evidence: dict[str, object] = {
                "seq_scan": row["seq_scan"],
                "seq_tup_read": row["seq_tup_read"],
                "avg_rows_per_seq_scan": row["avg_rows_per_scan"],
                "idx_scan": row["idx_scan"],
                "n_live_tup": row["n_live_tup"],
            }
            note = "Run `pgpulse advise <database-url>` to turn the slow statements into a verified index."
            if statements_available:
                pattern = rf"\m(from|join)\s+(\S+\.)?\"?{re.escape(row['table_name'])}\"?\M"
                top = await ctx.conn.fetch(STATEMENTS, pattern)
                evidence["top_statements"] = [
                    {
                        "query": " ".join(redact_sql(r["query"]).split())[:500],  # comments keep secrets
                        "calls": r["calls"],
                        "mean_ms": round(r["mean_exec_time"], 3),
                        "total_ms": round(r["total_exec_time"], 1),
                    }
                    for r in top
                ]
            else:
                note += " Enable pg_stat_statements to see which statements scan it."
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"table {table}",
                    title=f"{table} is read by sequential scans of ~{row['avg_rows_per_scan']:,} rows "
                    f"({row['seq_scan']:,} seq vs {row['idx_scan']:,} index scans)",
                    evidence=evidence,
                    fix=f'pgpulse advise "$DATABASE_URL" --table {row["table_name"]}',
                    note=note,
                )
            )
        return findings
