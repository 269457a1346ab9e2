"""Memory settings against a recommendation computed for the server's RAM, the way pgtune does (web/OLTP).

Only where the RAM is knowable: ``--memory`` says it, or the server listens on this machine's loopback or
Unix socket (then it shares this machine's RAM; a container's memory limit is not seen). Otherwise the
check is skipped with that note: recommending ``shared_buffers`` for a RAM we guessed would be a false alarm.

Recommendations (pgtune, "web application" profile) and thresholds:

* ``shared_buffers`` = RAM / 4 — a **warning** under half of it or over 40 % of RAM (the OS page cache,
  which PostgreSQL relies on, is then starved).
* ``effective_cache_size`` = RAM × 3 / 4 — info under half of it or above the RAM (the planner then
  assumes cache that does not exist).
* ``maintenance_work_mem`` = RAM / 16, at most 2 GB — info under half of it.
* ``work_mem`` = (RAM − shared_buffers) / (3 × max_connections) — info when
  ``work_mem × max_connections`` exceeds the RAM: every connection running one sort at once would
  exhaust it (the per-query use can be several times work_mem).
"""

from __future__ import annotations

from pgpulse.doctor.check import Context, Finding, Severity, SkipCheck, pretty_bytes

KB = 1024
MB = 1024 * KB
GB = 1024 * MB


def _bytes(ctx: Context, name: str) -> int:
    """A memory setting in bytes, from pg_settings' value and unit (``8kB`` pages, ``kB``, ``MB``)."""
    value, unit = ctx.settings[name]
    factor = {"B": 1, "kB": KB, "8kB": 8 * KB, "MB": MB, "GB": GB}.get(unit or "B", 1)
    return int(value) * factor


def _setting(size: int) -> str:
    """A size as postgresql.conf writes it, rounded down to a whole MB (or GB)."""
    return f"{size // GB}GB" if size >= 4 * GB and size % GB == 0 else f"{max(size // MB, 1)}MB"


def recommend(ram: int, max_connections: int) -> dict[str, int]:
    shared = ram // 4
    return {
        "shared_buffers": shared,
        "effective_cache_size": ram * 3 // 4,
        "maintenance_work_mem": min(ram // 16, 2 * GB),
        "work_mem": max(64 * KB, (ram - shared) // (3 * max(max_connections, 1))),
    }


class MemorySettingsCheck:
    name = "memory_settings"
    title = "Memory settings for this server's RAM"

    async def run(self, ctx: Context) -> list[Finding]:
        ram = ctx.memory_bytes
        if ram is None:
            raise SkipCheck(
                "the server's RAM is unknown (it is not on this machine): pass --memory, e.g. --memory 16GB"
            )
        connections = int(ctx.settings["max_connections"][0])
        want = recommend(ram, connections)
        have = {name: _bytes(ctx, name) for name in want}
        basis = {"ram": pretty_bytes(ram), "ram_source": ctx.memory_source}
        findings = []

        def add(name: str, severity: Severity, problem: str) -> None:
            findings.append(
                Finding(
                    check=self.name,
                    severity=severity,
                    object=f"setting {name}",
                    title=f"{name} = {pretty_bytes(have[name])} {problem} "
                    f"(recommended {pretty_bytes(want[name])} for {pretty_bytes(ram)} of RAM)",
                    evidence={**basis, "current": have[name], "recommended": want[name]},
                    fix=f"ALTER SYSTEM SET {name} = '{_setting(want[name])}';"
                    + ("  -- needs a restart" if name == "shared_buffers" else "\nSELECT pg_reload_conf();"),
                )
            )

        if have["shared_buffers"] < want["shared_buffers"] / 2:
            add("shared_buffers", Severity.warning, "is under half the recommendation")
        elif have["shared_buffers"] > ram * 0.4:
            add("shared_buffers", Severity.warning, "is over 40 % of RAM, starving the OS cache")
        if have["effective_cache_size"] < want["effective_cache_size"] / 2:
            add("effective_cache_size", Severity.info, "is under half the recommendation")
        elif have["effective_cache_size"] > ram:
            add("effective_cache_size", Severity.info, "is more than the RAM")
        if have["maintenance_work_mem"] < want["maintenance_work_mem"] / 2:
            add("maintenance_work_mem", Severity.info, "is under half the recommendation")
        if have["work_mem"] * connections > ram:
            add("work_mem", Severity.info, f"× max_connections {connections} exceeds the RAM")
        return findings
