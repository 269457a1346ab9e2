"""Prove a candidate index before showing it: the planner's own cost with and without it.

Two ways to get "with it" without touching the user's database:

* **HypoPG** (preferred): a hypothetical index exists only in this session's planner; nothing is built, no
  lock is taken, and it works in a read-only session.
* **Build and roll back** (``--allow-build``, disposable databases only): ``CREATE INDEX`` inside a
  transaction that is always rolled back. It takes a SHARE lock (writes to the table wait) and costs the
  build time, which is why it must be asked for; in return ``--measure`` can time the query with the index.

Queries with parameters (``$1``, or pg_stat_statements' normalized text) are costed with representative
values from ``pg_stats``: the most common value for equality (for a skewed column that is the hot key, the
case worth optimising), a value near the selective end of the histogram for ranges. Where a parameter has no
statistics, the generic plan PostgreSQL would cache for the statement is costed instead.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from pgpulse.advisor.candidates import Candidate, Resolution
from pgpulse.advisor.catalog import ColumnStats

PARAM = re.compile(r"\$(\d+)\b")
MEASURE_RUNS = 5


class VerifyError(RuntimeError):
    """Candidates cannot be verified on this database; the message says what to enable."""


@dataclass(frozen=True)
class Costed:
    cost: float
    indexes: frozenset[str]  # index names the plan uses
    generic: bool = False  # costed as a generic plan (a parameter had no representative value)


@dataclass
class Trial:
    """One candidate (or set of candidates) tried against one query."""

    before: Costed
    after: Costed
    size_bytes: dict[Candidate, int] = field(default_factory=dict)
    used: set[Candidate] = field(default_factory=set)
    measured_before_ms: float | None = None
    measured_after_ms: float | None = None

    @property
    def factor(self) -> float:
        return self.before.cost / self.after.cost if self.after.cost > 0 else float("inf")


def bind(sql: str, resolution: Resolution) -> tuple[str, set[int]]:
    """The query with each ``$n`` replaced by a representative literal; returns the numbers left unbound."""
    unbound: set[int] = set()

    def value(match: re.Match[str]) -> str:
        number = int(match.group(1))
        known = resolution.params.get(number)
        literal = None
        if known is not None:
            stats, pred = known
            literal = _representative(stats, pred.op, pred.kind)
        if literal is None:
            unbound.add(number)
            return match.group(0)
        return literal

    return PARAM.sub(value, sql), unbound


def bind_limits(sql: str, limit_param: int | None, offset_param: int | None) -> str:
    def value(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number == limit_param:
            return "10"
        if number == offset_param:
            return "0"
        return match.group(0)

    return PARAM.sub(value, sql)


def _representative(stats: ColumnStats, op: str, kind: str) -> str | None:
    if kind == "in":
        values = list(stats.mcv[:3]) or _quantiles(stats.histogram, (0.25, 0.5, 0.75))
        if not values:
            return None
        return _literal("{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}")
    if op in ("=", "IS NULL") or kind in ("eq", "join"):
        if stats.mcv:
            return _literal(stats.mcv[0])
        middle = _quantiles(stats.histogram, (0.5,))
        return _literal(middle[0]) if middle else None
    # a range: keep it selective (10% of the rows) so the candidate is costed on a query worth indexing
    where = 0.9 if op in (">", ">=") else 0.1
    bound = _quantiles(stats.histogram, (where,))
    if bound:
        return _literal(bound[0])
    return _literal(stats.mcv[0]) if stats.mcv else None


def _quantiles(histogram: Sequence[str], points: Sequence[float]) -> list[str]:
    if not histogram:
        return []
    return [histogram[min(len(histogram) - 1, int(p * (len(histogram) - 1)))] for p in points]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Verifier:
    """Costs queries on one connection, with hypothetical or rolled-back indexes."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        method: str,
        server_version: int,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.conn = conn
        self.method = method  # "hypopg" | "build"
        self.server_version = server_version
        self.log = log

    @classmethod
    async def create(
        cls, conn: asyncpg.Connection, allow_build: bool, log: Callable[[str], None] = lambda _: None
    ) -> Verifier:
        version = int(await conn.fetchval("SHOW server_version_num"))
        if await conn.fetchval("SELECT true FROM pg_extension WHERE extname = 'hypopg'"):
            return cls(conn, "hypopg", version, log)
        if allow_build:
            return cls(conn, "build", version, log)
        available = await conn.fetchval("SELECT true FROM pg_available_extensions WHERE name = 'hypopg'")
        if available:
            raise VerifyError(
                "HypoPG is installed on the server but not enabled in this database: run CREATE EXTENSION hypopg "
                "(or pass --allow-build on a disposable copy)"
            )
        raise VerifyError(
            "cannot verify candidates: install HypoPG on the server (e.g. apt install postgresql-<version>-hypopg, "
            "then CREATE EXTENSION hypopg) or pass --allow-build on a disposable copy of the database"
        )

    async def explain(self, sql: str, generic: bool = False) -> Costed:
        if generic:
            raw = await self._explain_generic(sql)
        else:
            raw = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}")
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        return Costed(float(plan["Total Cost"]), frozenset(_index_names(plan)), generic)

    async def _explain_generic(self, sql: str) -> Any:
        """The plan PostgreSQL would cache for the statement whatever its parameters: PREPARE it and EXPLAIN
        EXECUTE under ``plan_cache_mode = force_generic_plan`` (the NULLs passed are then not looked at)."""
        count = max(int(n) for n in PARAM.findall(sql))
        await self.conn.execute(f"PREPARE pgpulse_generic AS {sql}")
        try:
            await self.conn.execute("SET plan_cache_mode = force_generic_plan")
            nulls = ", ".join(["NULL"] * count)
            return await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE pgpulse_generic({nulls})")
        finally:
            await self.conn.execute("RESET plan_cache_mode")
            await self.conn.execute("DEALLOCATE pgpulse_generic")

    async def measure(self, sql: str) -> float:
        """Median execution time (ms) of the query run for real, from EXPLAIN ANALYZE without per-node timing."""
        times = []
        for _ in range(MEASURE_RUNS):
            raw = await self.conn.fetchval(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}")
            doc = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            times.append(float(doc["Execution Time"]))
        return statistics.median(times)

    async def trial(
        self, sql: str, candidates: Sequence[Candidate], before: Costed, generic: bool, measure: bool
    ) -> Trial:
        """Cost ``sql`` with all ``candidates`` present at once."""
        if self.method == "hypopg":
            return await self._trial_hypopg(sql, candidates, before, generic)
        return await self._trial_build(sql, candidates, before, generic, measure)

    async def _trial_hypopg(self, sql: str, candidates: Sequence[Candidate], before: Costed, generic: bool) -> Trial:
        names: dict[str, Candidate] = {}
        sizes: dict[Candidate, int] = {}
        try:
            for candidate in candidates:
                row = await self.conn.fetchrow(
                    "SELECT indexrelid, indexname FROM hypopg_create_index($1)", candidate.create_sql(False)
                )
                names[row["indexname"]] = candidate
                sizes[candidate] = int(await self.conn.fetchval("SELECT hypopg_relation_size($1)", row["indexrelid"]))
            after = await self.explain(sql, generic)
        finally:
            await self.conn.execute("SELECT hypopg_reset()")
        return Trial(before, after, sizes, {names[n] for n in after.indexes if n in names})

    async def _trial_build(
        self, sql: str, candidates: Sequence[Candidate], before: Costed, generic: bool, measure: bool
    ) -> Trial:
        names: dict[str, Candidate] = {}
        sizes: dict[Candidate, int] = {}
        # Explicitly READ WRITE: the session default is read-only; this transaction is always rolled back.
        await self.conn.execute("BEGIN READ WRITE")
        try:
            await self.conn.execute("SET LOCAL lock_timeout = '5s'")
            for i, candidate in enumerate(candidates):
                name = f"pgpulse_trial_{i}"
                self.log(f"building {candidate.create_sql(False, name)} (rolled back)")
                await self.conn.execute(candidate.create_sql(False, name))
                names[name] = candidate
                sizes[candidate] = int(await self.conn.fetchval("SELECT pg_relation_size($1::regclass)", name))
            after = await self.explain(sql, generic)
            trial = Trial(before, after, sizes, {names[n] for n in after.indexes if n in names})
            if measure and not generic:
                trial.measured_after_ms = await self.measure(sql)
        finally:
            await self.conn.execute("ROLLBACK")
        return trial


def _index_names(plan: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Index Name" in node:
            found.add(str(node["Index Name"]))
        stack.extend(node.get("Plans", []))
    return found
