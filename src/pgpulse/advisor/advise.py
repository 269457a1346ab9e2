"""The advisor's pipeline: queries → shapes → candidates → verified per query → chosen for the workload.

Each query first gets its own verdict (its best candidate, costed alone). Then, with HypoPG, the candidates of
every query go into one pool and :func:`pgpulse.advisor.selection.select_indexes` chooses the fewest indexes
that serve the workload together (hypothetical indexes coexist; greedy on the saving per index, net of the
table's write cost); the per-query verdicts are then rewritten from that choice. Without HypoPG (rolled-back
builds, one index at a time) per-query winners are merged instead.

Every decision is logged (``-v``) the way Dexter does it, so a user can follow why an index is proposed:
the queries read, the candidates tried, the planner's cost before and after each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import asyncpg

from pgpulse.advisor.candidates import (
    Candidate,
    Resolution,
    btree_keyable,
    bundles_for,
    candidates_for,
    covering_index,
    resolve,
)
from pgpulse.advisor.catalog import TableInfo, create_index_sql, index_name, load_table
from pgpulse.advisor.parse import NotAQuery, QueryShape, UnsupportedQuery
from pgpulse.advisor.partitions import with_partition_stats
from pgpulse.advisor.selection import (
    NARROWER_WITHIN,
    WRITE_MS_PER_ROW,
    Redundant,
    Selection,
    Workitem,
    select_indexes,
)
from pgpulse.advisor.verify import (
    CandidateRefused,
    Costed,
    Method,
    Statement,
    Trial,
    Unbindable,
    Verifier,
    statement,
)
from pgpulse.advisor.views import analyze_with_views
from pgpulse.advisor.workload import Source, WorkloadQuery
from pgpulse.errors import one_line
from pgpulse.sql import UnsafeStatementError, normalize, parses, quote_ident, redact_sql
from pgpulse.units import pretty_bytes

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass
class Options:
    factor: float = 2.0  # keep a candidate only if the planner's cost drops at least this much
    measure: bool = False
    min_rows: int = 1_000  # below this (and under 10 pages) a sequential scan is as good as any index
    table: str | None = None
    window_hours: float | None = None  # the period the workload's times were observed over, when known


class Status(StrEnum):
    """A verdict's status; the value is what the JSON report shows."""

    improved = "improved"  # an advised index makes the query at least ``factor`` times cheaper
    covered = "covered"  # an existing index already serves it
    no_gain = "no-gain"  # no index helps enough (tiny table, nothing an index can serve, or not ``factor``)
    skipped = "skipped"  # cannot be analysed or costed here; the reason says why
    ignored = "ignored"  # not reported: the tools' own catalog queries, or outside ``--table``


@dataclass
class Verdict:
    """What the advisor concluded for one query."""

    query: WorkloadQuery
    status: Status
    reason: str
    cost_before: float | None = None
    cost_after: float | None = None
    measured_before_ms: float | None = None
    measured_after_ms: float | None = None
    index: Candidate | None = None
    also: list[Candidate] = field(default_factory=list)  # other advised indexes its plan uses (a join, an OR)
    generic_plan: bool = False
    statement: Statement | None = None  # the checked query with its representative values, to measure again
    not_measured: str | None = None  # --measure did not run the query for real, and why

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
    saving_ms: float | None = None  # observed time it saves over the window (set selection only)
    write_ms: float | None = None  # estimated time its maintenance costs over the same window

    @property
    def name(self) -> str:
        """The index's name, unique after PostgreSQL's 63-byte truncation (--apply may add a suffix when it is
        taken by then)."""
        return index_name(self.candidate.table.name, self.candidate)

    @property
    def create_sql(self) -> str:
        if self.candidate.table.kind == "p":
            # PostgreSQL refuses CONCURRENTLY on a partitioned table; this is how to build it without blocking
            # writes (what --apply does).
            return (
                create_index_sql(self.candidate, only=True)
                + ";\n-- then for each partition: CREATE INDEX CONCURRENTLY … ON <partition> (…); "
                + f"ALTER INDEX {quote_ident(self.name)} ATTACH PARTITION <its index>;"
            )
        return create_index_sql(self.candidate, concurrently=True) + ";"

    def alembic(self) -> str:
        candidate = self.candidate
        cols = ", ".join(
            f"sa.text({_py(c.sql())})" if c.desc or c.expression else _py(c.name) for c in candidate.columns
        )
        table = candidate.table
        extra = f", schema={_py(table.schema)}" if table.schema != "public" else ""
        if candidate.method != "btree":
            extra += f", postgresql_using={_py(candidate.method)}"
        if candidate.include:
            extra += f", postgresql_include=[{', '.join(_py(c) for c in candidate.include)}]"
        if candidate.where:
            extra += f", postgresql_where=sa.text({_py(candidate.where)})"
        return (
            "# CREATE INDEX CONCURRENTLY cannot run inside a transaction: Alembic's autocommit block\n"
            "with op.get_context().autocommit_block():\n"
            f"    op.create_index({_py(self.name)}, {_py(table.name)}, [{cols}]{extra}, "
            "postgresql_concurrently=True)"
        )

    def write_note(self) -> str:
        table = self.candidate.table
        existing = len(table.indexes)
        columns = ", ".join(c.name for c in self.candidate.columns)
        return (
            f"{table.name} has {existing} index{'es' if existing != 1 else ''}; every INSERT, DELETE and every "
            f"UPDATE that is not HOT will also maintain this one (~{pretty_bytes(self.size_bytes)}), and UPDATEs that "
            f"change {columns} can no longer be HOT. Writes since the statistics reset: {table.writes:,}."
        )


@dataclass
class Advice:
    method: Method
    recommendations: list[Recommendation]
    verdicts: list[Verdict]
    redundant: list[Redundant] = field(default_factory=list)  # existing indexes the advice makes redundant
    selection: str = "per query"  # "workload" when the indexes were chosen together (HypoPG)
    timed: bool = False  # the queries came with observed times (pg_stat_statements, a log, samples)
    window_hours: float | None = None  # the period those times cover, when known
    explains: int = 0  # EXPLAINs the set selection ran


def _py(text: str) -> str:
    """A Python string literal (double-quoted when it can be, as people write them)."""
    return json.dumps(text, ensure_ascii=False)


class Advisor:
    """Runs the pipeline on one read-only session. One query's failure (a lock, a permission, a type with no
    B-tree operator class, a statement that may not be sent) is that query's verdict, never the end of the run."""

    def __init__(self, conn: asyncpg.Connection, verifier: Verifier, options: Options, log: Callable[[str], None]):
        self.conn = conn
        self.verifier = verifier
        self.options = options
        self.log = log
        self._tables: dict[tuple[str | None, str], TableInfo | None] = {}
        self.per_query_choices: list[Candidate] = []  # each query's own best index, before the set selection

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
        work: list[tuple[Verdict, _Prepared]] = []
        for query in workload:
            self.log(f"query ({query.label()}, {query.calls} calls): {_short(shape_of(query.sql))}")
            try:
                prepared = await self._prepare(query)
                verdict = prepared if isinstance(prepared, Verdict) else await self._best(query, prepared)
            except Exception as exc:  # one query's failure is its verdict, never the end of the run
                verdict = Verdict(query, Status.skipped, failure_reason(exc))
                prepared = verdict
            verdict.reason = scrub(verdict.reason)
            self.log(f"  → {verdict.status}: {verdict.reason}")
            if verdict.status != Status.ignored:
                verdicts.append(verdict)
            if not isinstance(prepared, Verdict):
                if verdict.index is not None:
                    chosen.append((verdict.index, verdict, prepared))
                if prepared.tried or prepared.bundles:
                    work.append((verdict, prepared))
        self.per_query_choices = [candidate for candidate, _, _ in chosen]
        timed = any(q.total_ms > 0 for q in workload)
        advice = Advice(self.verifier.method, [], verdicts, timed=timed, window_hours=self.options.window_hours)
        if self.verifier.method is Method.hypopg and work:
            try:
                await self._select(work, advice)
                return advice
            except Exception as exc:  # the per-query verdicts still stand: merge them instead
                self.log(f"choosing for the whole workload failed ({failure_reason(exc)}); merging per-query advice")
        elif self.verifier.method is not Method.hypopg:
            self.log("rolled-back builds cost one index at a time: per-query advice merged (HypoPG chooses a set)")
        advice.recommendations = await self._merge(chosen)
        return advice

    async def _select(self, work: list[tuple[Verdict, _Prepared]], advice: Advice) -> None:
        """Choose the workload's indexes together and rewrite the per-query verdicts from that choice."""
        items: list[Workitem] = []
        by_key: dict[str, tuple[Verdict, _Prepared]] = {}
        for position, (verdict, prepared) in enumerate(work, 1):
            key = f"q{position}"
            by_key[key] = (verdict, prepared)
            query = verdict.query
            # Without observed times (queries given by hand) a query weighs its planner cost, once per call.
            weight = query.total_ms if advice.timed else prepared.before.cost * query.calls
            items.append(
                Workitem(
                    key,
                    query.sql,
                    prepared.before.cost,
                    tuple(prepared.tried),
                    query.calls,
                    weight,
                    prepared.stmt.generic or prepared.before.generic,
                    tuple(prepared.bundles),
                )
            )

        async def explain(item: Workitem) -> tuple[float, set[str]]:
            costed = await self.verifier.explain(by_key[item.key][1].stmt)
            return costed.cost, set(costed.indexes)

        selection = await select_indexes(
            self.conn,
            items,
            # without observed times there is no period to weigh writes over: the report says so
            write_ms_per_row=WRITE_MS_PER_ROW if advice.timed else 0.0,
            min_saving_share=1 - 1 / self.options.factor,
            log=self.log,
            explain=explain,
        )
        advice.selection = "workload"
        advice.explains = selection.explains
        advice.redundant = selection.redundant
        self._apply_selection(selection, by_key, advice)

    def _apply_selection(
        self, selection: Selection, by_key: dict[str, tuple[Verdict, _Prepared]], advice: Advice
    ) -> None:
        served: set[str] = set()
        for choice in sorted(selection.chosen, key=lambda c: -c.saving_ms):
            rec = Recommendation(choice.candidate, choice.size_bytes, saving_ms=choice.saving_ms)
            rec.write_ms = choice.write_ms if advice.timed else None
            for key, (before, after) in choice.served.items():
                verdict, prepared = by_key[key]
                if after * self.options.factor > before and verdict.status != Status.improved:
                    continue  # its plan uses the index, but not to the --factor: its own verdict stands
                if key not in served:
                    verdict.cost_before, verdict.cost_after = before, after
                    verdict.index = choice.candidate
                    if verdict.status != Status.improved:
                        verdict.status = Status.improved
                        verdict.reason = f"{choice.candidate.reason} (chosen with the workload's other indexes)"
                    verdict.statement = (
                        prepared.stmt if prepared.not_measured is None and self.options.measure else None
                    )
                elif choice.candidate not in verdict.also:
                    verdict.also.append(choice.candidate)
                served.add(key)
                rec.verdicts.append(verdict)
            if rec.verdicts:
                advice.recommendations.append(rec)
        declined = {key: d for d in selection.declined for key in d.keys}
        for key, (verdict, _) in by_key.items():
            if key in served or verdict.status != Status.improved:
                continue
            verdict.index, verdict.cost_after = None, None
            verdict.status = Status.no_gain
            if key in declined:
                d = declined[key]
                names = " + ".join(f"({c.column_list()}) on {c.table.name}" for c in d.option)
                verdict.reason = (
                    f"not advised: {names} would save {d.saving_ms:,.1f} ms but its writes cost about "
                    f"{d.write_ms:,.1f} ms over the same window (pg_stat_user_tables)"
                )
            else:
                verdict.reason = (
                    "not advised: with the workload's chosen indexes no candidate cuts its cost "
                    f"{self.options.factor}× or more, or its saving is below the workload's noise floor"
                )

    async def _prepare(self, query: WorkloadQuery) -> _Prepared | Verdict:
        """The query's shape, its cost now and the candidates worth trying; or its verdict when there is none."""
        read = await self._read(query)
        if isinstance(read, Verdict):
            return read
        shape, tables = read
        resolution = resolve(shape, tables)
        for note in resolution.notes:
            self.log(f"  note: {note}")
        prepared = await self._cost_now(query, shape, resolution)
        found = self._candidates(resolution, prepared)
        prepared.candidates = found.candidates
        if self.verifier.method is not Method.hypopg:
            prepared.bundles.clear()  # an OR's indexes are costed together only by the set selection
        if found.candidates or prepared.bundles:
            return prepared  # without a single candidate, the set selection costs the OR's indexes together
        return self._no_candidate(query, prepared, resolution, found)

    async def _read(self, query: WorkloadQuery) -> tuple[QueryShape, dict[str, TableInfo]] | Verdict:
        """Parse the query (through views), check it, and load its tables' statistics; a verdict for a query
        that is not ours to advise on (not a query, catalogs only, another table than ``--table``, no stats)."""
        # A workload read from the server or its log also holds the tools' own catalog queries: "ignored"
        # verdicts are left out of the report for those sources, and shown for queries the user gave.
        noise = Status.ignored if query.source in (Source.pg_stat_statements, Source.log) else Status.skipped
        try:
            shape = await analyze_with_views(self.conn, query.sql)  # views read through to their tables
        except UnsupportedQuery as exc:
            return Verdict(query, noise if isinstance(exc, NotAQuery) else Status.skipped, str(exc))
        wanted = self.options.table
        if wanted and not any(wanted in (r.name, f"{r.schema}.{r.name}") for r in shape.tables):
            return Verdict(query, Status.ignored, f"does not read {wanted}")
        try:  # the statement itself is checked before anything of it is sent
            statement(query.sql)
        except UnsafeStatementError as exc:
            return Verdict(query, Status.skipped, f"not sent to the server: {exc}")
        tables: dict[str, TableInfo] = {}
        for ref in shape.tables:
            info = await self.table(ref.schema, ref.name)
            if info is None and (ref.schema in SYSTEM_SCHEMAS or ref.name.startswith("pg_")):
                return Verdict(query, noise, "reads only system catalogs")
            if info is None:
                return Verdict(query, Status.skipped, f"table {ref.name!r} not found (or not a table) in this database")
            tables[ref.alias] = info
        if all(t.schema in SYSTEM_SCHEMAS for t in tables.values()):
            return Verdict(query, noise, "reads only system catalogs")
        unanalyzed = [t.name for t in tables.values() if not t.analyzed]
        if unanalyzed:
            names = ", ".join(unanalyzed)
            return Verdict(
                query, Status.skipped, f"{names} never analyzed: no statistics to cost with; run ANALYZE {names}"
            )
        return shape, tables

    async def _cost_now(self, query: WorkloadQuery, shape: QueryShape, resolution: Resolution) -> _Prepared:
        """EXPLAIN the query as it is (and with --measure, time it), with representative values bound."""
        stmt = statement(query.sql, resolution, shape.limit_param, shape.offset_param)
        if stmt.values:
            # which column each value comes from, never the value: pg_stats holds the application's data
            origins = {n: f"{stats.name} ({pred.kind})" for n, (stats, pred) in resolution.params.items()}
            shown = ", ".join(f"${n} ← {origins.get(n, 'LIMIT/OFFSET')}" for n in sorted(stmt.values))
            self.log(f"  with representative values from pg_stats: {shown}")
        if stmt.generic:
            self.log(f"  parameters {stmt.unbound} have no statistics: costing a generic plan")
        before = await self.verifier.explain(stmt)
        if before.generic and not stmt.generic:
            stmt = stmt.without_values()
        prepared = _Prepared(shape, stmt, before)
        if self.options.measure:
            prepared.not_measured = await self.verifier.why_not_execute(stmt)
            if prepared.not_measured is None:
                try:
                    prepared.measured_before_ms = await self.verifier.measure(stmt)
                except Unbindable as exc:
                    prepared.not_measured = str(exc)
                except asyncpg.PostgresError as exc:  # rolled back; the estimate still stands
                    prepared.not_measured = f"running it failed ({failure_reason(exc)})"
            if prepared.not_measured:
                self.log(f"  not executed (--measure): {prepared.not_measured}; estimated cost only")
        self.log(
            f"  cost now {before.cost:,.1f}" + (f", uses {', '.join(sorted(before.indexes))}" if before.indexes else "")
        )
        return prepared

    def _candidates(self, resolution: Resolution, prepared: _Prepared) -> _Found:
        """Sort each table's candidates: to verify, already served by an index (``prepared.covered``), not
        verifiable by this verifier, or on a table too small for any index to matter. An OR's per-branch
        bundles go to ``prepared.bundles``."""
        found = _Found()
        for plan in resolution.plans:
            info = plan.table
            if info.schema in SYSTEM_SCHEMAS:
                continue
            if info.rows < self.options.min_rows and info.pages < 10:
                found.tiny.append(f"{info.name} ({info.rows:,.0f} rows)")
                continue
            for bundle in bundles_for(plan):  # an OR's branches: only the set selection costs them together
                if all(c.method == "btree" for c in bundle) and bundle not in prepared.bundles:
                    prepared.bundles.append(bundle)
            for candidate in candidates_for(plan):
                existing = covering_index(candidate)
                if existing is not None:
                    self.log(
                        f"  candidate ({candidate.column_list()}) on {info.name}: already served by {existing.name}"
                    )
                    prepared.covered.append(existing.name)
                elif candidate.method != "btree" and self.verifier.method is Method.hypopg:
                    # HypoPG costs B-tree, BRIN, hash and bloom indexes only: say so rather than guess
                    self.log(f"  candidate {candidate.create_sql(False)}: HypoPG cannot cost it")
                    found.unverifiable.append(candidate)
                else:
                    self.log(f"  candidate ({candidate.column_list()}) on {info.name}: {candidate.reason}")
                    found.candidates.append(candidate)
        return found

    def _no_candidate(
        self, query: WorkloadQuery, prepared: _Prepared, resolution: Resolution, found: _Found
    ) -> Verdict:
        """The verdict for a query no candidate is left to verify for, with the most useful reason."""
        before = prepared.before
        if found.unverifiable:
            return Verdict(
                query,
                Status.skipped,
                f"not verifiable here: {found.unverifiable[0].create_sql()} would serve it, but HypoPG cannot cost "
                f"{found.unverifiable[0].method.upper()} indexes; verify it with --allow-build on a disposable copy",
                before.cost,
            )
        if prepared.covered:
            served = ", ".join(dict.fromkeys(prepared.covered))
            return self._verdict(query, prepared, Status.covered, f"already served by {served}", before.cost)
        if found.tiny:
            return self._verdict(
                query, prepared, Status.no_gain, f"tiny table: {', '.join(found.tiny)}; a sequential scan is as fast"
            )
        unkeyable = [
            f"{name} ({plan.table.columns[name].type})"
            for plan in resolution.plans
            for name in dict.fromkeys(plan.equality + plan.in_list + plan.ranges + plan.joins)
            if name in plan.table.columns and not btree_keyable(plan.table.columns[name])
        ]
        if unkeyable:  # CREATE INDEX would fail: not advisable here, and the reason is the type
            return self._verdict(
                query,
                prepared,
                Status.skipped,
                f"{', '.join(unkeyable)}: no default operator class for a B-tree index (a GiST or other index "
                "may serve it; pgpulse proposes B-tree and GIN indexes)",
            )
        return self._verdict(query, prepared, Status.no_gain, "no predicate or ORDER BY an index can serve")

    def _verdict(
        self, query: WorkloadQuery, prepared: _Prepared, status: Status, reason: str, after: float | None = None
    ) -> Verdict:
        return Verdict(
            query,
            status,
            reason,
            prepared.before.cost,
            after,
            measured_before_ms=prepared.measured_before_ms,
            generic_plan=prepared.before.generic,
            not_measured=prepared.not_measured,
        )

    async def _best(self, query: WorkloadQuery, prepared: _Prepared) -> Verdict:
        qualified: list[tuple[Candidate, Trial]] = []
        refused: list[str] = []
        for candidate in prepared.candidates:
            try:
                trial = await self.verifier.trial(prepared.stmt, [candidate], prepared.before, False)
            except CandidateRefused as exc:
                self.log(f"  candidate ({candidate.column_list()}) refused by PostgreSQL: {exc}")
                refused.append(f"({candidate.column_list()}): {exc}")
                continue
            prepared.tried.append(candidate)
            used = candidate in trial.used
            self.log(
                f"  cost with ({candidate.column_list()}): {trial.after.cost:,.1f} ({trial.factor:,.1f}×)"
                + ("" if used else ", not used by the plan")
            )
            if not used or trial.factor < self.options.factor:
                continue
            qualified.append((candidate, trial))
        best = _pick(qualified)
        if best is None:
            covered = ""
            if prepared.covered:
                covered = f"; already served by {', '.join(dict.fromkeys(prepared.covered))}"
            if refused and len(refused) == len(prepared.candidates):
                return self._verdict(
                    query, prepared, Status.skipped, "no candidate can be built: " + "; ".join(refused)
                )
            note = f"; not possible: {'; '.join(refused)}" if refused else ""
            return self._verdict(
                query,
                prepared,
                Status.covered if prepared.covered else Status.no_gain,
                f"no candidate cuts the cost {self.options.factor}× or more{covered}{note}",
            )
        candidate, trial = best
        prepared.best_size = trial.size_bytes.get(candidate, 0)
        verdict = self._verdict(query, prepared, Status.improved, candidate.reason, trial.after.cost)
        verdict.index = candidate
        verdict.statement = prepared.stmt if prepared.not_measured is None and self.options.measure else None
        return verdict

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
            try:
                for k in kept:
                    if k != candidate and k.covers(candidate):
                        trial = await self.verifier.trial(prepared.stmt, [k], prepared.before, False)
                        if k in trial.used and trial.factor >= self.options.factor:
                            self.log(
                                f"merged ({candidate.column_list()}) into ({k.column_list()}): {trial.factor:,.1f}×"
                            )
                            final = k
                            break
                measure = self.options.measure and prepared.not_measured is None
                trial = await self.verifier.trial(prepared.stmt, [final], prepared.before, measure)
            except Exception as exc:  # keep the recommendation as it was verified in _best
                self.log(f"  re-costing ({final.column_list()}) failed: {failure_reason(exc)}; keeping it as costed")
                if candidate not in recommendations:
                    recommendations[candidate] = Recommendation(candidate, prepared.best_size)
                recommendations[candidate].verdicts.append(verdict)
                continue
            verdict.index = final
            verdict.cost_after = trial.after.cost
            verdict.measured_after_ms = trial.measured_after_ms
            if final not in recommendations:
                recommendations[final] = Recommendation(final, trial.size_bytes.get(final, 0))
            recommendations[final].verdicts.append(verdict)
        return sorted(recommendations.values(), key=lambda r: -sum(v.cost_before or 0 for v in r.verdicts))


def shape_of(sql: str) -> str:
    """A query as pgpulse shows it: its normalized shape (every constant a ``$n``) on one line; text that does
    not parse is shown with its literals and comments masked (PostgreSQL's scanner), or cut at its first quote."""
    shown = redact_sql(normalize(sql) if parses(sql) else sql)  # redact_sql also drops comments
    return " ".join(shown.split())


# A parser message quotes the token it stopped at: "unterminated quoted string at or near "'hunter2"".
_NEAR = re.compile(r'at or near "(?:[^"]|"")*"')


def scrub(reason: str) -> str:
    """A verdict's reason without a literal a parser or server message quoted from the query."""
    return _NEAR.sub(lambda m: m.group(0) if _plain_token(m.group(0)[12:-1]) else "at or near (a literal)", reason)


def _plain_token(token: str) -> bool:
    return token.replace("_", "").replace(".", "").isalnum() and not token[:1].isdigit()


def failure_reason(exc: BaseException) -> str:
    """One line for a query or candidate that failed, without the values it was costed with: a data error's
    message quotes the offending value (a pg_stats value), so only its kind is shown."""
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return "table locked (lock_timeout while waiting for another session's lock), skipped"
    if isinstance(exc, asyncpg.QueryCanceledError):
        return "cancelled by statement_timeout, skipped"
    if isinstance(exc, asyncpg.DataError):
        return f"cannot EXPLAIN it here: {type(exc).__name__} (values not shown)"
    if isinstance(exc, asyncpg.PostgresError):
        return f"cannot EXPLAIN it here: {one_line(exc)}"
    if isinstance(exc, (UnsafeStatementError, CandidateRefused, Unbindable)):
        return f"not sent to the server: {one_line(exc)}"
    return f"skipped after an unexpected {type(exc).__name__}: {one_line(exc)}"


def _pick(qualified: list[tuple[Candidate, Trial]]) -> tuple[Candidate, Trial] | None:
    """The cheapest plan's cost sets the bar; of the candidates within 10% of it, the narrowest wins, then the
    cheaper, then the first offered.

    Measured against the minimum, not pairwise in the order the candidates come: a pairwise "within 10% the
    narrower wins" is not transitive — (a) displaced (a, b) at +8 %, then (a, b, c) beat (a) by 11 % although
    it was no cheaper than (a, b), and the verdict depended on ANALYZE's random sample."""
    if not qualified:
        return None
    cheapest = min(trial.after.cost for _, trial in qualified)
    near = [(i, c, t) for i, (c, t) in enumerate(qualified) if t.after.cost <= cheapest * (1 + NARROWER_WITHIN)]
    _, candidate, trial = min(near, key=lambda x: (len(x[1].columns), x[2].after.cost, x[0]))
    return candidate, trial


@dataclass
class _Found:
    """A query's candidates, sorted by what can be done with them (see ``Advisor._candidates``)."""

    candidates: list[Candidate] = field(default_factory=list)  # to verify
    unverifiable: list[Candidate] = field(default_factory=list)  # HypoPG cannot cost their method
    tiny: list[str] = field(default_factory=list)  # tables too small for an index to matter, as shown


@dataclass
class _Prepared:
    shape: QueryShape
    stmt: Statement  # checked, with representative values to bind
    before: Costed
    measured_before_ms: float | None = None
    not_measured: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    best_size: int = 0  # estimated size of the best candidate, as _best costed it
    tried: list[Candidate] = field(default_factory=list)  # candidates PostgreSQL accepted (set selection pool)
    bundles: list[tuple[Candidate, ...]] = field(default_factory=list)  # an OR's per-branch indexes


def _short(sql: str, width: int = 140) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
