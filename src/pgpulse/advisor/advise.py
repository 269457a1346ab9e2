"""The advisor's pipeline: queries → shapes → candidates → verified, merged recommendations.

Every decision is logged (``-v``) the way Dexter does it, so a user can follow why an index is proposed:
the queries read, the candidates tried, the planner's cost before and after each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from pgpulse.advisor.candidates import Candidate, candidates_for, covering_index, resolve
from pgpulse.advisor.catalog import TableInfo, load_table
from pgpulse.advisor.parse import NotAQuery, QueryShape, UnsupportedQuery
from pgpulse.advisor.partitions import with_partition_stats
from pgpulse.advisor.verify import Costed, Trial, Verifier, bind, bind_limits
from pgpulse.advisor.views import analyze_with_views
from pgpulse.advisor.workload import WorkloadQuery

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass
class Options:
    factor: float = 2.0  # keep a candidate only if the planner's cost drops at least this much
    measure: bool = False
    min_rows: int = 1_000  # below this (and under 10 pages) a sequential scan is as good as any index
    table: str | None = None


@dataclass
class Verdict:
    """What the advisor concluded for one query."""

    query: WorkloadQuery
    status: str  # "improved" | "covered" | "no-gain" | "skipped" | "ignored" (not reported)
    reason: str
    cost_before: float | None = None
    cost_after: float | None = None
    measured_before_ms: float | None = None
    measured_after_ms: float | None = None
    index: Candidate | None = None
    generic_plan: bool = False
    bound_sql: str | None = None  # the query with representative values, as costed and measured

    @property
    def factor(self) -> float | None:
        if self.cost_before is None or not self.cost_after:
            return None
        return self.cost_before / self.cost_after


@dataclass
class Recommendation:
    candidate: Candidate
    size_bytes: int
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def create_sql(self) -> str:
        return self.candidate.create_sql(concurrently=True) + ";"

    def alembic(self) -> str:
        cols = ", ".join(
            f'sa.text("{c.sql()}")' if c.desc or not c.name.isidentifier() else f'"{c.name}"'
            for c in self.candidate.columns
        )
        table = self.candidate.table
        schema = f', schema="{table.schema}"' if table.schema != "public" else ""
        return (
            "# CREATE INDEX CONCURRENTLY cannot run inside a transaction: Alembic's autocommit block\n"
            "with op.get_context().autocommit_block():\n"
            f'    op.create_index("{self.candidate.name}", "{table.name}", [{cols}]{schema}, '
            "postgresql_concurrently=True)"
        )

    def write_note(self) -> str:
        table = self.candidate.table
        existing = len(table.indexes)
        columns = ", ".join(c.name for c in self.candidate.columns)
        return (
            f"{table.name} has {existing} index{'es' if existing != 1 else ''}; every INSERT, DELETE and every "
            f"UPDATE that is not HOT will also maintain this one (~{_size(self.size_bytes)}), and UPDATEs that "
            f"change {columns} can no longer be HOT. Writes since the statistics reset: {table.writes:,}."
        )


@dataclass
class Advice:
    method: str
    recommendations: list[Recommendation]
    verdicts: list[Verdict]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


class Advisor:
    def __init__(self, conn: asyncpg.Connection, verifier: Verifier, options: Options, log: Callable[[str], None]):
        self.conn = conn
        self.verifier = verifier
        self.options = options
        self.log = log
        self._tables: dict[tuple[str | None, str], TableInfo | None] = {}

    async def table(self, schema: str | None, name: str) -> TableInfo | None:
        key = (schema, name)
        if key not in self._tables:
            # a partitioned parent autovacuum never analyzed: statistics from its partitions
            self._tables[key] = await with_partition_stats(self.conn, await load_table(self.conn, name, schema))
        return self._tables[key]

    async def run(self, workload: Sequence[WorkloadQuery]) -> Advice:
        self.log(
            f"verifying with {self.verifier.method}; keeping candidates that cut the cost ≥ {self.options.factor}×"
        )
        verdicts: list[Verdict] = []
        chosen: list[tuple[Candidate, Verdict, _Prepared]] = []
        for query in workload:
            self.log(f"query ({query.label()}, {query.calls} calls): {_short(query.sql)}")
            prepared = await self._prepare(query)
            if isinstance(prepared, Verdict):
                self.log(f"  → {prepared.status}: {prepared.reason}")
                if prepared.status != "ignored":
                    verdicts.append(prepared)
                continue
            verdict = await self._best(query, prepared)
            self.log(f"  → {verdict.status}: {verdict.reason}")
            verdicts.append(verdict)
            if verdict.index is not None:
                chosen.append((verdict.index, verdict, prepared))
        recommendations = await self._merge(chosen)
        return Advice(self.verifier.method, recommendations, verdicts)

    async def _prepare(self, query: WorkloadQuery) -> _Prepared | Verdict:
        # A workload read from the server or its log also holds the tools' own catalog queries: "ignored"
        # verdicts are left out of the report for those sources, and shown for queries the user gave.
        noise = "ignored" if query.source in ("pg_stat_statements", "log") else "skipped"
        try:
            shape = await analyze_with_views(self.conn, query.sql)  # views read through to their tables
        except UnsupportedQuery as exc:
            return Verdict(query, noise if isinstance(exc, NotAQuery) else "skipped", str(exc))
        wanted = self.options.table
        if wanted and not any(wanted in (r.name, f"{r.schema}.{r.name}") for r in shape.tables):
            return Verdict(query, "ignored", f"does not read {wanted}")
        tables: dict[str, TableInfo] = {}
        for ref in shape.tables:
            info = await self.table(ref.schema, ref.name)
            if info is None and (ref.schema in SYSTEM_SCHEMAS or ref.name.startswith("pg_")):
                return Verdict(query, noise, "reads only system catalogs")
            if info is None:
                return Verdict(query, "skipped", f"table {ref.name!r} not found (or not a table) in this database")
            tables[ref.alias] = info
        if all(t.schema in SYSTEM_SCHEMAS for t in tables.values()):
            return Verdict(query, noise, "reads only system catalogs")
        unanalyzed = [t.name for t in tables.values() if not t.analyzed]
        if unanalyzed:
            names = ", ".join(unanalyzed)
            return Verdict(query, "skipped", f"{names} never analyzed: no statistics to cost with; run ANALYZE {names}")
        resolution = resolve(shape, tables)
        for note in resolution.notes:
            self.log(f"  note: {note}")
        sql, unbound = bind(bind_limits(query.sql, shape.limit_param, shape.offset_param), resolution)
        generic = False
        if unbound:
            generic = True
            self.log(f"  parameters {sorted(unbound)} have no statistics: costing a generic plan")
        elif shape.params:
            self.log(f"  with representative values: {_short(sql)}")
        try:
            before = await self.verifier.explain(sql, generic)
        except asyncpg.PostgresError as exc:
            return Verdict(query, "skipped", f"cannot EXPLAIN it here: {str(exc).splitlines()[0]}")
        prepared = _Prepared(shape, sql, generic, before)
        if self.options.measure and shape.statement == "select" and not generic:
            prepared.measured_before_ms = await self.verifier.measure(sql)
        self.log(
            f"  cost now {before.cost:,.1f}" + (f", uses {', '.join(sorted(before.indexes))}" if before.indexes else "")
        )
        candidates: list[Candidate] = []
        unverifiable: list[Candidate] = []
        tiny: list[str] = []
        for plan in resolution.plans:
            info = plan.table
            if info.schema in SYSTEM_SCHEMAS:
                continue
            if info.rows < self.options.min_rows and info.pages < 10:
                tiny.append(f"{info.name} ({info.rows:,.0f} rows)")
                continue
            for candidate in candidates_for(plan):
                existing = covering_index(candidate)
                if existing is not None:
                    self.log(
                        f"  candidate ({candidate.column_list()}) on {info.name}: already served by {existing.name}"
                    )
                    prepared.covered.append(existing.name)
                elif candidate.method != "btree" and self.verifier.method == "hypopg":
                    # HypoPG costs B-tree, BRIN, hash and bloom indexes only: say so rather than guess
                    self.log(f"  candidate {candidate.create_sql(False)}: HypoPG cannot cost it")
                    unverifiable.append(candidate)
                else:
                    self.log(f"  candidate ({candidate.column_list()}) on {info.name}: {candidate.reason}")
                    candidates.append(candidate)
        prepared.candidates = candidates
        if not candidates and unverifiable:
            return Verdict(
                query,
                "skipped",
                f"not verifiable here: {unverifiable[0].create_sql()} would serve it, but HypoPG cannot cost "
                f"{unverifiable[0].method.upper()} indexes; verify it with --allow-build on a disposable copy",
                before.cost,
            )
        if not candidates:
            if prepared.covered:
                served = ", ".join(dict.fromkeys(prepared.covered))
                return Verdict(query, "covered", f"already served by {served}", before.cost, before.cost)
            if tiny:
                return Verdict(
                    query, "no-gain", f"tiny table: {', '.join(tiny)}; a sequential scan is as fast", before.cost
                )
            return Verdict(query, "no-gain", "no predicate or ORDER BY an index can serve", before.cost)
        return prepared

    async def _best(self, query: WorkloadQuery, prepared: _Prepared) -> Verdict:
        best: tuple[Candidate, Trial] | None = None
        for candidate in prepared.candidates:
            trial = await self.verifier.trial(prepared.sql, [candidate], prepared.before, prepared.generic, False)
            used = candidate in trial.used
            self.log(
                f"  cost with ({candidate.column_list()}): {trial.after.cost:,.1f} ({trial.factor:,.1f}×)"
                + ("" if used else ", not used by the plan")
            )
            if not used or trial.factor < self.options.factor:
                continue
            if best is None or _better(candidate, trial, *best):
                best = (candidate, trial)
        before = prepared.before.cost
        if best is None:
            covered = ""
            if prepared.covered:
                covered = f"; already served by {', '.join(dict.fromkeys(prepared.covered))}"
            return Verdict(
                query,
                "covered" if prepared.covered else "no-gain",
                f"no candidate cuts the cost {self.options.factor}× or more{covered}",
                before,
                measured_before_ms=prepared.measured_before_ms,
                generic_plan=prepared.generic,
            )
        candidate, trial = best
        return Verdict(
            query,
            "improved",
            candidate.reason,
            before,
            trial.after.cost,
            measured_before_ms=prepared.measured_before_ms,
            index=candidate,
            generic_plan=prepared.generic,
            bound_sql=None if prepared.generic or prepared.shape.statement != "select" else prepared.sql,
        )

    async def _merge(self, chosen: list[tuple[Candidate, Verdict, _Prepared]]) -> list[Recommendation]:
        """Fewest indexes: a query whose index is a prefix of another chosen index is served by that one
        when the longer index still meets the factor for it (checked, not assumed)."""
        kept: list[Candidate] = []
        for candidate, _, _ in sorted(chosen, key=lambda c: -len(c[0].columns)):
            if candidate not in kept and not any(k.covers(candidate) for k in kept):
                kept.append(candidate)
        recommendations: dict[Candidate, Recommendation] = {}
        for candidate, verdict, prepared in chosen:
            final = candidate
            for k in kept:
                if k != candidate and k.covers(candidate):
                    trial = await self.verifier.trial(prepared.sql, [k], prepared.before, prepared.generic, False)
                    if k in trial.used and trial.factor >= self.options.factor:
                        self.log(f"merged ({candidate.column_list()}) into ({k.column_list()}): {trial.factor:,.1f}×")
                        final = k
                        break
            measure = self.options.measure and prepared.shape.statement == "select" and not prepared.generic
            trial = await self.verifier.trial(prepared.sql, [final], prepared.before, prepared.generic, measure)
            verdict.index = final
            verdict.cost_after = trial.after.cost
            verdict.measured_after_ms = trial.measured_after_ms
            if final not in recommendations:
                recommendations[final] = Recommendation(final, trial.size_bytes.get(final, 0))
            recommendations[final].verdicts.append(verdict)
        return sorted(recommendations.values(), key=lambda r: -sum(v.cost_before or 0 for v in r.verdicts))


def _better(candidate: Candidate, trial: Trial, best: Candidate, best_trial: Trial) -> bool:
    """Lower cost wins; within 10% the narrower index wins (cheaper to write and keep)."""
    if trial.after.cost < best_trial.after.cost * 0.9:
        return True
    if trial.after.cost <= best_trial.after.cost * 1.1:
        return len(candidate.columns) < len(best.columns)
    return False


@dataclass
class _Prepared:
    shape: QueryShape
    sql: str  # with representative values bound
    generic: bool
    before: Costed
    measured_before_ms: float | None = None
    candidates: list[Candidate] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)


def _short(sql: str, width: int = 140) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
