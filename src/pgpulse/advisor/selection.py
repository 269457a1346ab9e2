"""Advise the workload, not one query: the fewest indexes that serve the top queries, chosen together.

Single-query advice gives every query its own best index; a workload then collects near-duplicates, each paid
for on every write. Here the candidates of all queries go into one pool and are chosen greedily: each round
costs every query a candidate could serve with the indexes already chosen *plus* that candidate (hypothetical
indexes coexist in one HypoPG session, so the planner sees the whole set, the way it will after CREATE INDEX),
and keeps the candidate with the largest net saving:

* **saving** — for each query, its observed time (``total_ms`` from pg_stat_statements or the log) times the
  share of its planner cost the candidate removes on top of the set so far;
* **write cost** — the table's inserts, updates and deletes over the same period (``pg_stat_user_tables``) times
  an estimated cost of maintaining one more index entry (``WRITE_MS_PER_ROW``).

A candidate whose saving does not pay for its writes is not advised. Candidates that gained nothing in a round
are dropped (with more indexes chosen they only gain less), which keeps the number of EXPLAINs near
``queries × candidates`` instead of that times the rounds. Existing plain indexes that a chosen index makes
redundant (a leading prefix of it, not unique, not a constraint) are listed for ``DROP``.

Advisor wiring: build one :class:`Workitem` per prepared query (the SQL as costed, its cost before, its
candidates) and call :func:`select_indexes` instead of merging per-query verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from pgpulse.advisor.candidates import Candidate, IndexColumn, bundles_for, candidates_for, covering_index, resolve
from pgpulse.advisor.catalog import ExistingIndex, TableInfo, load_table
from pgpulse.advisor.parse import UnsupportedQuery
from pgpulse.advisor.partitions import with_partition_stats
from pgpulse.advisor.views import analyze_with_views
from pgpulse.advisor.workload import WorkloadQuery
from pgpulse.errors import UserError, one_line
from pgpulse.sql import UnsafeStatementError, one_statement, quote_qualified
from pgpulse.sql.guard import DML_KINDS

WRITE_MS_PER_ROW = 0.002  # one more B-tree entry per written row: ~2 µs (measured order of magnitude, PG 15)
MIN_NET_SHARE = 0.001  # a chosen index must save at least this share of the workload time, net of its writes
MIN_SAVING_SHARE = 0.2  # a chosen index must remove at least this share of one query's cost (else it is noise)


class SelectionError(UserError, RuntimeError):
    """The workload cannot be costed as a set here; the message says what is missing."""


@dataclass(frozen=True)
class Workitem:
    """One query of the workload, prepared: the SQL as it is costed, and what the workload says it costs."""

    key: str  # a label for the report (queryid, or the query's position)
    sql: str
    before: float  # the planner's cost with no hypothetical index
    candidates: tuple[Candidate, ...]
    calls: int = 1
    total_ms: float = 0.0  # observed execution time over the period (pg_stat_statements, the log)
    generic: bool = False  # cost the generic plan (parameters without representative values)
    bundles: tuple[tuple[Candidate, ...], ...] = ()  # indexes that serve the query only together (an OR)

    @property
    def tables(self) -> set[str]:
        return {c.table_key for c in self.candidates} | {c.table_key for b in self.bundles for c in b}


@dataclass
class Choice:
    candidate: Candidate
    saving_ms: float  # observed time it saves over the period, when it was added to the set
    write_ms: float  # estimated time its maintenance costs over the same period
    size_bytes: int = 0
    served: dict[str, tuple[float, float]] = field(default_factory=dict)  # query key -> (cost before, after)


@dataclass
class Redundant:
    index: ExistingIndex
    table: str
    because: Candidate  # the chosen index that has its columns as a leading prefix

    @property
    def drop_sql(self) -> str:
        schema = self.because.table.schema
        return f"DROP INDEX CONCURRENTLY {quote_qualified(schema, self.index.name)};"


@dataclass(frozen=True)
class Declined:
    """A candidate that helped its queries but was not chosen: its saving did not pay for its writes."""

    option: tuple[Candidate, ...]
    saving_ms: float
    write_ms: float
    keys: tuple[str, ...]  # the queries it would have served


@dataclass
class Selection:
    chosen: list[Choice]
    redundant: list[Redundant]
    explains: int
    before: dict[str, float]  # query key -> cost with no new index
    after: dict[str, float]  # query key -> cost with every chosen index
    declined: list[Declined] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # query key -> why it was not part of the selection

    @property
    def saving_ms(self) -> float:
        return sum(c.saving_ms for c in self.chosen)


async def select_indexes(
    conn: asyncpg.Connection,
    work: Sequence[Workitem],
    *,
    write_ms_per_row: float = WRITE_MS_PER_ROW,
    min_saving_share: float = MIN_SAVING_SHARE,
    max_indexes: int = 500,
    min_net_share: float = MIN_NET_SHARE,
    log: Callable[[str], None] = lambda _: None,
    explain: Explain | None = None,
) -> Selection:
    """Greedy set selection over the workload's candidates, costed together with HypoPG on ``conn``.

    ``explain`` costs one item under the hypothetical indexes present (the advisor passes its verifier's, which
    binds representative values and plans generic plans); without it an item's text is EXPLAINed as it is, so
    items that need a generic plan are left out (``Selection.left_out`` says so)."""
    if not await conn.fetchval("SELECT true FROM pg_extension WHERE extname = 'hypopg'"):
        raise SelectionError("choosing indexes for the whole workload needs HypoPG: CREATE EXTENSION hypopg")
    costs = _Costs(conn, explain)
    left_out: dict[str, str] = {}
    if explain is None:
        for w in work:
            if w.generic:
                left_out[w.key] = "a parameter has no representative value: its own verdict stands"
        if left_out:
            log(f"left out of the set selection (generic plans): {', '.join(left_out)}")
        work = [w for w in work if not w.generic]
    current = {w.key: w.before for w in work}
    floor = min_net_share * sum(w.total_ms for w in work)  # an index must pay for itself and then some
    # An option is one index, or the indexes of an OR's branches (a BitmapOr needs all of them at once).
    pool: list[Option] = []
    for item in work:
        for option in [(c,) for c in item.candidates] + list(item.bundles):
            if any(c.method != "btree" for c in option):
                continue  # HypoPG cannot cost GIN: those stay per-query verdicts ("not verifiable here")
            fresh = tuple(c for c in option if covering_index(c) is None)
            if fresh and fresh not in pool:
                pool.append(fresh)
    chosen: list[Choice] = []
    affected = {o: [w for w in work if {c.table_key for c in o} & w.tables] for o in pool}
    # Lazy greedy: an option's gain changes only when an index chosen meanwhile serves one of its queries,
    # so gains are kept between rounds and recomputed only for those (a 50-table workload is 50 small problems).
    gains: dict[Option, tuple[float, float, float, dict[str, float]]] = {}
    dirty = set(pool)
    while pool and len(chosen) < max_indexes:
        for option in [o for o in pool if o in dirty]:
            items = affected[option]
            tables = {t for w in items for t in w.tables}
            present = [c.candidate for c in chosen if c.candidate.table_key in tables]
            after = await costs.with_indexes([*present, *[c for c in option if c not in present]], items)
            saving = 0.0
            helps = False
            for item in items:
                gained = max(0.0, current[item.key] - after[item.key])
                if item.before > 0:
                    saving += item.total_ms * gained / item.before
                    helps = helps or gained >= min_saving_share * item.before
            dirty.discard(option)
            if not helps:
                pool.remove(option)  # with more indexes chosen it can only gain less
                gains.pop(option, None)
                continue
            write = sum(c.table.writes for c in option) * write_ms_per_row
            gains[option] = (saving - write, saving, write, after)
            log(f"  {_describe(option)}: saves {saving:,.1f} ms, writes {write:,.1f} ms")
        best = _choose(pool, gains, affected, floor)
        if best is None:
            break
        net, saving, write, after = gains.pop(best)
        log(f"chose {_describe(best)}: net {net:,.1f} ms")
        already = {c.candidate for c in chosen}
        added = [c for c in best if c not in already]
        for candidate in added:
            share = 1 / len(added)
            chosen.append(Choice(candidate, saving * share, candidate.table.writes * write_ms_per_row))
        pool.remove(best)
        changed = set()
        for key, cost in after.items():
            if cost < current[key]:
                current[key] = cost
                changed.add(key)
        dirty |= {o for o in pool if any(w.key in changed for w in affected[o])}
    final = await costs.with_indexes([c.candidate for c in chosen], list(work), usage=True)
    for choice in chosen:
        choice.size_bytes = costs.sizes.get(choice.candidate, 0)
        for item in work:
            if choice.candidate in costs.used.get(item.key, set()):
                choice.served[item.key] = (item.before, final[item.key])
    # An index no query's final plan uses is not advised, whatever it saved when it was added.
    chosen = [c for c in chosen if c.served]
    declined = [
        Declined(o, gains[o][1], gains[o][2], tuple(w.key for w in affected[o] if gains[o][3][w.key] < current[w.key]))
        for o in pool
        if o in gains and gains[o][1] > 0 and gains[o][0] <= floor
    ]
    return Selection(
        chosen, _redundant(chosen), costs.explains, {w.key: w.before for w in work}, final, declined, left_out
    )


async def prepare_work(
    conn: asyncpg.Connection, queries: Sequence[WorkloadQuery], min_rows: int = 1_000
) -> tuple[list[Workitem], dict[str, str]]:
    """Work items for queries without parameters (a parameterised query needs the verifier's representative
    values: the advisor builds its items from its own prepared queries). Returns the items and, per query left
    out, why."""
    tables: dict[tuple[str | None, str], TableInfo | None] = {}
    items: list[Workitem] = []
    skipped: dict[str, str] = {}
    for position, query in enumerate(queries, 1):
        key = query.label() if query.queryid is not None else f"q{position}"
        try:
            shape = await analyze_with_views(conn, query.sql)
        except UnsupportedQuery as exc:
            skipped[key] = str(exc)
            continue
        if shape.params:
            skipped[key] = "has parameters: costed by the advisor's verifier"
            continue
        infos: dict[str, TableInfo] = {}
        for ref in shape.tables:
            if (ref.schema, ref.name) not in tables:
                loaded = await load_table(conn, ref.name, ref.schema)
                tables[(ref.schema, ref.name)] = await with_partition_stats(conn, loaded)
            info = tables[(ref.schema, ref.name)]
            if info is not None:
                infos[ref.alias] = info
        if len(infos) != len(shape.tables):
            skipped[key] = "reads a table that is not in this database"
            continue
        candidates: list[Candidate] = []
        bundles: list[tuple[Candidate, ...]] = []
        for plan in resolve(shape, infos).plans:
            if plan.table.rows < min_rows and plan.table.pages < 10:
                continue  # a sequential scan of a tiny table is as fast as any index
            candidates.extend(c for c in candidates_for(plan) if c not in candidates)
            bundles.extend(bundles_for(plan))
        try:
            one_statement(query.sql, DML_KINDS)
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query.sql}")
        except (UnsafeStatementError, asyncpg.PostgresError) as exc:
            skipped[key] = f"cannot EXPLAIN it here: {one_line(exc)}"
            continue
        before = float((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]["Total Cost"])
        items.append(
            Workitem(key, query.sql, before, tuple(candidates), query.calls, query.total_ms, bundles=tuple(bundles))
        )
    return items, skipped


async def per_query_best(
    conn: asyncpg.Connection, work: Sequence[Workitem]
) -> tuple[dict[str, tuple[Candidate, float]], int]:
    """The baseline: each query's own cheapest candidate, costed alone (what single-query advice proposes);
    returns it and the number of EXPLAINs it took."""
    costs = _Costs(conn)
    best: dict[str, tuple[Candidate, float]] = {}
    for item in work:
        if item.generic:
            continue
        for candidate in [c for c in item.candidates if c.method == "btree"]:
            after = (await costs.with_indexes([candidate], [item], usage=True))[item.key]
            used = candidate in costs.used.get(item.key, set())
            if used and after < best.get(item.key, (candidate, item.before))[1]:
                best[item.key] = (candidate, after)
    return best, costs.explains


Option = tuple[Candidate, ...]
Explain = Callable[["Workitem"], Awaitable[tuple[float, set[str]]]]  # an item's cost, and the indexes it uses


# a narrower index whose plan is within 10% of the cheapest wins (cheaper to write and keep): the per-query
# verdict (advise._pick) and the workload selection (_choose) share this bound
NARROWER_WITHIN = 0.1


def _width(option: Option) -> int:
    return sum(len(c.columns) for c in option)


def _choose(
    pool: list[Option],
    gains: dict[Option, tuple[float, float, float, dict[str, float]]],
    affected: dict[Option, list[Workitem]],
    floor: float,
) -> Option | None:
    """The option with the largest net saving — unless a narrower one comes within 10% of its plans' cost.

    Savings are weighted costs, so "the plans cost within 10%" reads: the narrower option's net saving is short
    of the best's by at most a tenth of what the best leaves to pay (the affected queries' weighted cost after
    it). Without it a third key column that trims 0.1% off the plan (``amount > 0``, which filters nothing)
    would win over the two columns that do the work — and which one won would depend on ANALYZE's sample.

    An index whose trailing keys serve an ORDER BY is not traded for one without them: the sort it saves is
    cheap for the representative value the plan was costed with, and costly for a hot key."""
    eligible = [o for o in pool if gains[o][0] > floor]
    if not eligible:
        return None
    top = max(eligible, key=lambda o: (gains[o][0], -_width(o)))
    after = gains[top][3]
    left = sum(w.total_ms * after[w.key] / w.before for w in affected[top] if w.before > 0)
    ordered = any(c.ordered for c in top)
    near = [
        o
        for o in eligible
        if gains[o][0] >= gains[top][0] - NARROWER_WITHIN * left and (not ordered or any(c.ordered for c in o))
    ]
    return min(near, key=lambda o: (_width(o), -gains[o][0], pool.index(o)))


def _describe(option: Option) -> str:
    return " + ".join(f"({c.column_list()}) on {c.table.name}" for c in option)


def _redundant(chosen: list[Choice]) -> list[Redundant]:
    found: list[Redundant] = []
    for choice in chosen:
        candidate = choice.candidate
        for index in candidate.table.indexes:
            if index.method != "btree" or index.partial or not index.columns:
                continue
            if index.definition.upper().startswith("CREATE UNIQUE") or index.name.endswith("_pkey"):
                continue  # a constraint, not just a lookup path
            prefix = Candidate(
                candidate.table, candidate.table_key, tuple(IndexColumn(n, d) for n, d in index.columns), 0
            )
            if candidate.where is None and candidate.covers(prefix) and len(index.columns) <= len(candidate.columns):
                found.append(Redundant(index, candidate.table.name, candidate))
    return found


class _Costs:
    """EXPLAINs under a set of hypothetical indexes, counted."""

    def __init__(self, conn: asyncpg.Connection, explain: Explain | None = None) -> None:
        self.conn = conn
        self.explain = explain
        self.explains = 0
        self.sizes: dict[Candidate, int] = {}
        self.used: dict[str, set[Candidate]] = {}

    async def with_indexes(
        self, indexes: Sequence[Candidate], work: Sequence[Workitem], usage: bool = False
    ) -> dict[str, float]:
        names: dict[str, Candidate] = {}
        costs: dict[str, float] = {}
        try:
            for candidate in indexes:
                row = await self.conn.fetchrow(
                    "SELECT indexrelid, indexname FROM hypopg_create_index($1)", candidate.create_sql(False)
                )
                names[row["indexname"]] = candidate
                if usage:
                    self.sizes[candidate] = int(
                        await self.conn.fetchval("SELECT hypopg_relation_size($1)", row["indexrelid"])
                    )
            for item in work:
                cost, used = await self._explain(item)
                costs[item.key] = cost
                if usage:
                    self.used[item.key] = {names[n] for n in used if n in names}
        finally:
            await self.conn.execute("SELECT hypopg_reset()")
        return costs

    async def _explain(self, item: Workitem) -> tuple[float, set[str]]:
        self.explains += 1
        if self.explain is not None:
            return await self.explain(item)
        one_statement(item.sql, DML_KINDS)  # workload text: exactly one read statement, or it is not sent
        raw = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {item.sql}")
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        names: set[str] = set()
        stack = [plan]
        while stack:
            node = stack.pop()
            if "Index Name" in node:
                names.add(str(node["Index Name"]))
            stack.extend(node.get("Plans", []))
        return float(plan["Total Cost"]), names
