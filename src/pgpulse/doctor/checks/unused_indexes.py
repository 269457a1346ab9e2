"""Unused indexes: never scanned since the statistics were reset, yet paid for on every write.

Each index costs a write on every INSERT and every non-HOT UPDATE, WAL, cache space and vacuum time.
Primary keys, unique indexes and indexes backing a constraint are excluded: they enforce correctness even
when no query reads them. Counters are per server: a replica that serves reads has its own, so check
there before dropping. An index whose leading columns are a foreign key is kept in the list but flagged:
it makes deletes on the parent table fast even if no query scans it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pgpulse.doctor.check import Context, Finding, Severity, pretty_bytes, qualified

SQL = """
SELECT s.schemaname, s.relname AS table_name, s.indexrelname AS index_name,
       pg_relation_size(s.indexrelid) AS size_bytes,
       pg_get_indexdef(s.indexrelid) AS definition,
       EXISTS (
           SELECT 1 FROM pg_constraint fk
           WHERE fk.contype = 'f' AND fk.conrelid = i.indrelid
             AND (i.indkey::int2[])[0:cardinality(fk.conkey) - 1] = fk.conkey
       ) AS supports_foreign_key
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0
  AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname
"""

STATS_SINCE = """
SELECT COALESCE(d.stats_reset, pg_postmaster_start_time()) AS since, d.stats_reset IS NULL AS from_start
FROM pg_stat_database d WHERE d.datname = current_database()
"""


class UnusedIndexesCheck:
    name = "unused_indexes"
    title = "Unused indexes"

    async def run(self, ctx: Context) -> list[Finding]:
        since_row = await ctx.conn.fetchrow(STATS_SINCE)
        since: datetime = since_row["since"]
        window_days = (datetime.now(UTC) - since).total_seconds() / 86400
        basis = "server start" if since_row["from_start"] else "the last statistics reset"
        findings = []
        for row in await ctx.conn.fetch(SQL):
            name = qualified(row["schemaname"], row["index_name"])
            note = (
                f"idx_scan = 0 since {basis} ({since:%Y-%m-%d %H:%M} UTC, {window_days:.1f} days). "
                "Replicas keep their own counters: check them before dropping."
            )
            if window_days < 7:
                note += " The window is short: let a full business cycle pass before trusting it."
            if row["supports_foreign_key"]:
                note += " Its leading columns are a foreign key: without it, deleting a parent row scans this table."
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning
                    if window_days >= 7 and not row["supports_foreign_key"]
                    else Severity.info,
                    object=f"index {name}",
                    title=f"index {name} on {row['table_name']} has never been scanned",
                    evidence={
                        "idx_scan": 0,
                        "size": pretty_bytes(row["size_bytes"]),
                        "size_bytes": row["size_bytes"],
                        "since": since,
                        "definition": row["definition"],
                    },
                    fix=f"DROP INDEX CONCURRENTLY {name};",
                    note=note,
                )
            )
        return findings
