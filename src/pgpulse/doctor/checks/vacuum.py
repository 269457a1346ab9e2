"""Vacuum health: dead tuples piling up, autovacuum switched off or too lazy for a large, busy table.

Dead tuples are rows that updates and deletes left behind; until VACUUM reclaims them every scan reads
them. The default trigger (20 % of the table dead) means 2,000,000 dead rows before a 10M-row table is
vacuumed — for large high-churn tables we compute a per-table scale factor from the table's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from pgpulse.doctor.check import Context, Finding, Severity, qualified

MIN_DEAD = 10_000
DEAD_RATIO = 0.10
LARGE_TABLE = 1_000_000
TARGET_DEAD_ROWS = 50_000  # vacuum a large table after about this many dead rows

SQL = """
SELECT s.schemaname, s.relname AS table_name, s.n_live_tup, s.n_dead_tup,
       s.n_tup_upd + s.n_tup_del AS churn, s.last_vacuum, s.last_autovacuum,
       s.last_analyze, s.last_autoanalyze, s.autovacuum_count, s.vacuum_count,
       c.reloptions, pg_table_size(s.relid) AS size_bytes
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
ORDER BY s.n_dead_tup DESC
"""


def _option(reloptions: list[str] | None, key: str) -> str | None:
    for item in reloptions or []:
        name, _, value = item.partition("=")
        if name == key:
            return value
    return None


def proposed_scale_factors(live_rows: int) -> tuple[float, float]:
    """Vacuum after ~50k dead rows and analyze after ~25k changed rows, bounded to sane factors."""
    vacuum = min(0.2, max(0.001, round(TARGET_DEAD_ROWS / max(live_rows, 1), 4)))
    analyze = min(0.1, max(0.0005, round(vacuum / 2, 4)))
    return vacuum, analyze


def _last(*stamps: datetime | None) -> datetime | None:
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


@dataclass
class VacuumCheck:
    large_table_rows: int = LARGE_TABLE
    name: ClassVar[str] = "vacuum"
    title: ClassVar[str] = "Vacuum and dead tuples"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = []
        for row in await ctx.conn.fetch(SQL):
            table = qualified(row["schemaname"], row["table_name"])
            live, dead = row["n_live_tup"], row["n_dead_tup"]
            ratio = dead / max(live + dead, 1)
            disabled = _option(row["reloptions"], "autovacuum_enabled") in ("false", "off")
            evidence = {
                "n_live_tup": live,
                "n_dead_tup": dead,
                "dead_ratio": round(ratio, 3),
                "last_vacuum": _last(row["last_vacuum"], row["last_autovacuum"]),
                "last_analyze": _last(row["last_analyze"], row["last_autoanalyze"]),
                "autovacuum_enabled": not disabled,
            }
            if dead >= MIN_DEAD and ratio >= DEAD_RATIO:
                fix = f"VACUUM (ANALYZE, VERBOSE) {table};"
                if disabled:
                    fix += f"\nALTER TABLE {table} RESET (autovacuum_enabled);"
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.critical if ratio >= 0.5 else Severity.warning,
                        object=f"table {table}",
                        title=f"{table} is {ratio:.0%} dead tuples ({dead:,} dead, {live:,} live)"
                        + (" and autovacuum is disabled on it" if disabled else ""),
                        evidence=evidence,
                        fix=fix,
                        note="Every scan reads the dead rows until VACUUM reclaims them.",
                    )
                )
            elif disabled:
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.warning,
                        object=f"table {table}",
                        title=f"autovacuum is disabled on {table}",
                        evidence=evidence,
                        fix=f"ALTER TABLE {table} RESET (autovacuum_enabled);",
                    )
                )
            current = _option(row["reloptions"], "autovacuum_vacuum_scale_factor")
            if live >= self.large_table_rows and row["churn"] >= live * 0.1 and current is None:
                vacuum_sf, analyze_sf = proposed_scale_factors(live)
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.info,
                        object=f"table {table}",
                        title=f"{table} is large and busy: the default 20 % trigger waits for "
                        f"{int(live * 0.2):,} dead rows",
                        evidence={**evidence, "updates_and_deletes": row["churn"]},
                        fix=f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = {vacuum_sf}, "
                        f"autovacuum_analyze_scale_factor = {analyze_sf});",
                        note=f"Vacuums after ~{int(live * vacuum_sf):,} dead rows and analyzes after "
                        f"~{int(live * analyze_sf):,} changed rows.",
                    )
                )
        return findings
