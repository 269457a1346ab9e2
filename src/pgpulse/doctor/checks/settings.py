"""Server settings that decide whether a slow query can even be found, and how fast queries run.

Each rule is a setting, a condition, a reason and the ALTER SYSTEM that fixes it. Defaults that are fine
for a laptop are wrong for production: no slow-query log, 128MB of shared buffers, random_page_cost
tuned for spinning disks, sessions allowed to sit idle in a transaction forever.

The database's cache hit ratio (``pg_stat_database``) is judged only from 10,000 blocks on, so a fresh or
idle database is not flagged for its first cold reads: under 99 % is info, under 95 % a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pgpulse.doctor.check import Context, Finding, Severity

CACHE = """
SELECT blks_hit, blks_read, temp_files, temp_bytes
FROM pg_stat_database WHERE datname = current_database()
"""
MIN_BLOCKS_FOR_RATIO = 10_000
# Judged against the server's RAM by memory_settings when the RAM is known; these generic rules stand in
# only when it is not.
MEMORY_RULES = {"shared_buffers", "work_mem"}


@dataclass(frozen=True)
class Rule:
    setting: str
    applies: Callable[[dict[str, str]], bool]
    severity: Severity
    title: str
    fix: str
    note: str


def _int(values: dict[str, str], name: str) -> int:
    return int(values.get(name, "0") or 0)


RULES = (
    Rule(
        "log_min_duration_statement",
        lambda v: _int(v, "log_min_duration_statement") < 0,
        Severity.warning,
        "slow queries are not logged (log_min_duration_statement = -1)",
        "ALTER SYSTEM SET log_min_duration_statement = '250ms';\nSELECT pg_reload_conf();",
        "Without it there is no record of slow statements for `pgpulse logs` or `pgpulse advise --log`.",
    ),
    Rule(
        "track_io_timing",
        lambda v: v.get("track_io_timing") == "off",
        Severity.info,
        "track_io_timing is off: EXPLAIN and pg_stat_statements cannot tell I/O time from CPU time",
        "ALTER SYSTEM SET track_io_timing = on;\nSELECT pg_reload_conf();",
        "Its overhead is negligible on modern clocks (check with pg_test_timing).",
    ),
    Rule(
        "shared_buffers",
        lambda v: _int(v, "shared_buffers") * _int(v, "block_size") <= 128 * 1024 * 1024,
        Severity.warning,
        "shared_buffers is at the 128MB default",
        "ALTER SYSTEM SET shared_buffers = '4GB';  -- about 25% of RAM; needs a restart",
        "The default suits a laptop, not a database server.",
    ),
    Rule(
        "work_mem",
        lambda v: _int(v, "work_mem") <= 4096,
        Severity.info,
        "work_mem is at the 4MB default: sorts and hashes beyond it spill to disk",
        "ALTER SYSTEM SET work_mem = '16MB';\nSELECT pg_reload_conf();",
        "It is per sort/hash node per connection: size it against max_connections.",
    ),
    Rule(
        "random_page_cost",
        lambda v: float(v.get("random_page_cost", "4")) >= 4.0,
        Severity.info,
        "random_page_cost = 4 assumes spinning disks: on SSD the planner over-prices index scans",
        "ALTER SYSTEM SET random_page_cost = 1.1;\nSELECT pg_reload_conf();",
        "On SSD or a cloud volume, random reads cost about the same as sequential ones.",
    ),
    Rule(
        "idle_in_transaction_session_timeout",
        lambda v: _int(v, "idle_in_transaction_session_timeout") == 0,
        Severity.warning,
        "sessions may sit idle in a transaction forever (idle_in_transaction_session_timeout = 0)",
        "ALTER SYSTEM SET idle_in_transaction_session_timeout = '60s';\nSELECT pg_reload_conf();",
        "An idle transaction holds locks and stops vacuum from removing dead rows.",
    ),
    Rule(
        "statement_timeout",
        lambda v: _int(v, "statement_timeout") == 0,
        Severity.info,
        "no server-wide statement_timeout: a runaway query runs until someone kills it",
        "ALTER ROLE app_user SET statement_timeout = '30s';  -- per application role",
        "Set it per role (or per connection in the pool's connect args), not for maintenance roles.",
    ),
)


class SettingsCheck:
    name = "settings"
    title = "Server settings"

    async def run(self, ctx: Context) -> list[Finding]:
        # read from pg_settings at connect time, before the doctor set its own session timeouts
        values = {name: value for name, (value, _) in ctx.settings.items()}
        units = {name: unit for name, (_, unit) in ctx.settings.items()}
        findings = []
        for rule in RULES:
            if ctx.memory_bytes is not None and rule.setting in MEMORY_RULES:
                continue
            if rule.setting in values and rule.applies(values):
                shown = values[rule.setting] + (f" ({units[rule.setting]})" if units.get(rule.setting) else "")
                findings.append(
                    Finding(
                        check=self.name,
                        severity=rule.severity,
                        object=f"setting {rule.setting}",
                        title=rule.title,
                        evidence={rule.setting: shown},
                        fix=rule.fix,
                        note=rule.note,
                    )
                )
        stats = await ctx.conn.fetchrow(CACHE)
        if stats is not None:
            total = stats["blks_hit"] + stats["blks_read"]
            ratio = stats["blks_hit"] / total if total else None
            if ratio is not None and total >= MIN_BLOCKS_FOR_RATIO and ratio < 0.99:
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.warning if ratio < 0.95 else Severity.info,
                        object=f"database {ctx.database}",
                        title=f"cache hit ratio is {ratio:.2%} (healthy OLTP databases stay above 99%)",
                        evidence={"blks_hit": stats["blks_hit"], "blks_read": stats["blks_read"]},
                        fix="Raise shared_buffers, or find the queries reading the most blocks "
                        "(pg_stat_statements shared_blks_read) and index them.",
                    )
                )
            if stats["temp_files"] > 0 and _int(values, "work_mem") <= 4096:
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.info,
                        object=f"database {ctx.database}",
                        title=f"{stats['temp_files']:,} temporary files written: sorts/hashes spilled to disk",
                        evidence={"temp_files": stats["temp_files"], "temp_bytes": stats["temp_bytes"]},
                        fix="ALTER SYSTEM SET work_mem = '16MB';  -- or SET work_mem for the reporting queries",
                    )
                )
        return findings
