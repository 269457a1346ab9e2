"""Index candidates for one query: equality columns first (most selective first), then what can follow them.

A B-tree serves a query best when the columns compared with ``=`` come first (any order among them finds the
same rows; the most selective first keeps the index useful for queries that give only some of them), followed
by either the ORDER BY columns with their direction — the index then returns rows already sorted, and a LIMIT
stops after the first few — or one range column. ``IN`` lists filter like equality but break the ordering, so
they come after the equality columns and an ORDER BY tail is not offered behind them.

Example, the seed query ``WHERE user_id = $1 AND status = 'published' ORDER BY created_at DESC LIMIT 10``:
``user_id`` (thousands of distinct values) before ``status`` (three), then ``created_at DESC``:
``(user_id, status, created_at DESC)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from pgpulse.advisor.catalog import ColumnStats, ExistingIndex, TableInfo
from pgpulse.advisor.parse import (
    OrderItem,
    Predicate,
    QueryShape,
    Relation,
    Scope,
    Target,
    index_including,
    index_keys,
    render_constant,
    render_expression,
)
from pgpulse.sql import quote_ident

# The index access methods the advisor proposes: btree, or gin for containment and full text.
IndexMethod = Literal["btree", "gin"]

MAX_NAME = 63
RARE_SHARE = 0.05  # a value on at most this share of the rows is rare enough for a partial index
PARTIAL_MAX_DISTINCT = 100  # ... of a column with at most this many distinct values
MAX_KEY_COLUMNS = 5  # wider keys are rarely more selective, and every write pays for each column
MAX_INCLUDE = 3  # more stored columns and the index is a second copy of the table
# Core types without a default B-tree operator class (``pg_opclass``): never index keys.
NO_BTREE_TYPES = frozenset({"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle", "jsonpath"})
PLACEHOLDER = ColumnStats("", "text", None, None, mcv=("0",))  # the value of a constant the plan does not look at


@dataclass(frozen=True)
class IndexColumn:
    name: str  # a column name, or for an expression key its SQL (rendered by pglast: ``lower(email)``)
    desc: bool = False
    expression: bool = False

    def sql(self) -> str:
        key = f"({self.name})" if self.expression else quote_ident(self.name)
        return f"{key} DESC" if self.desc else key


@dataclass(frozen=True)
class Candidate:
    table: TableInfo = field(compare=False, hash=False)
    table_key: str  # schema.name, for equality and hashing
    columns: tuple[IndexColumn, ...]
    equality: int  # how many leading columns are equality columns (their order among themselves is free)
    reason: str = field(compare=False, default="")
    where: str | None = None  # a partial index's predicate, as SQL rendered by pglast (``status = 'failed'``)
    include: tuple[str, ...] = ()  # non-key columns stored in the index, for an index-only scan
    method: IndexMethod = "btree"  # "gin" for containment and full text (HypoPG cannot cost those: see advise)
    # Its trailing keys are a query's ORDER BY: the scan returns the rows sorted and LIMIT stops early, which
    # keeps the plan cheap for a hot key too — more than one representative value's cost shows (see selection).
    ordered: bool = field(compare=False, default=False)

    @property
    def name(self) -> str:
        words = [re.sub(r"\W+", "_", c.name).strip("_") for c in self.columns]
        suffix = ("_partial" if self.where else "") + ("_incl" if self.include else "")
        suffix += "" if self.method == "btree" else f"_{self.method}"
        base = "ix_" + self.table.name + "_" + "_".join(words) + suffix
        return base[:MAX_NAME]

    def column_list(self) -> str:
        return ", ".join(c.sql() for c in self.columns)

    def create_sql(self, concurrently: bool = True, name: str | None = None) -> str:
        how = "CONCURRENTLY " if concurrently else ""
        where = f" WHERE {self.where}" if self.where else ""
        include = f" INCLUDE ({', '.join(quote_ident(c) for c in self.include)})" if self.include else ""
        index = quote_ident(name or self.name)
        using = "" if self.method == "btree" else f" USING {self.method}"
        columns = f"({self.column_list()})"
        return f"CREATE INDEX {how}{index} ON {self.table.qualified}{using} {columns}{include}{where}"

    def covers(self, other: Candidate) -> bool:
        """True when this index serves everything ``other`` would (``other`` is a prefix, modulo free order)."""
        held = {c.name for c in self.columns} | set(self.include)
        return (
            self.table_key == other.table_key
            and self.where == other.where
            and set(other.include) <= held
            and _prefix_of(other, self.columns)
        )


@dataclass
class TablePlan:
    """The per-table reading of a query: its predicates resolved to this table's columns."""

    table: TableInfo
    equality: list[str] = field(default_factory=list)
    in_list: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)  # columns equated with another table's column
    order: list[OrderItem] = field(default_factory=list)  # only when every ORDER BY column is on this table
    expressions: list[str] = field(default_factory=list)  # ``lower(email)`` compared with a value (rendered SQL)
    constants: dict[str, str] = field(default_factory=dict)  # equality column -> the constant it is compared with
    or_groups: list[list[TablePlan]] = field(default_factory=list)  # ``a = 1 OR b = 2``: one plan per branch
    referenced: list[str] = field(default_factory=list)  # every column the query reads, when it reads only this table
    containment: list[IndexColumn] = field(default_factory=list)  # ``tags @> …``: GIN keys (column or expression)


@dataclass
class Resolution:
    plans: list[TablePlan]
    notes: list[str]  # predicates that could not be attached (ambiguous or unknown columns)
    params: dict[int, tuple[ColumnStats, Predicate]]  # $n -> the column it is compared with


def resolve(shape: QueryShape, tables: dict[str, TableInfo]) -> Resolution:
    """Attach each predicate to its base table and column, looked up the way PostgreSQL does it.

    ``tables`` maps each alias of ``shape.tables`` (unique within the shape) to its catalog entry. A column is
    found in the innermost scope that has it, through CTEs, subqueries and views down to the base table; one
    that is ambiguous, unknown, or computed (an aggregate, a MATERIALIZED CTE's output) is noted and skipped.
    """
    plans = {alias: TablePlan(info) for alias, info in tables.items()}
    notes: list[str] = []
    params: dict[int, tuple[ColumnStats, Predicate]] = {}

    def owner(qualifier: str | None, column: str, scope: Scope | None) -> tuple[str, str] | None:
        if scope is not None:
            found = _lookup(scope, qualifier, column, tables)
            return found if isinstance(found, tuple) else None
        # a shape built by hand, without scopes: one flat FROM list
        if qualifier is not None:
            alias = qualifier if qualifier in plans else None
            if alias is None:  # qualified by the table name although it has an alias
                alias = next((a for a, p in plans.items() if p.table.name == qualifier), None)
            return (alias, column) if alias is not None and column in plans[alias].table.columns else None
        holders = [a for a, p in plans.items() if column in p.table.columns]
        return (holders[0], column) if len(holders) == 1 else None

    joins: list[tuple[str, str]] = []
    for pred in shape.predicates:
        found = owner(pred.qualifier, pred.column, pred.scope)
        if found is None:
            notes.append(f"column {pred.column!r} not found in exactly one table of the query: skipped")
            continue
        alias, column = found
        plan = plans[alias]
        if column != pred.column:
            pred = replace(pred, column=column)  # read through a view or subquery: the base table's name
        stats = plan.table.columns[column]
        if pred.kind == "in" and len(pred.params) > 1:
            # An expanded IN list: each $n is one value of the column. Distinct values, spread over the common
            # values and the histogram, so the planner estimates a list of n values, not one value n times.
            values = list(dict.fromkeys(stats.mcv + stats.histogram))
            for i, number in enumerate(pred.params):
                one = replace(stats, mcv=(values[i % len(values)],), mcf=()) if values else stats
                params[number] = (one, replace(pred, kind="eq", op="=", param=number, params=(number,)))
        elif pred.param is not None and pred.expression is None and pred.kind != "gin":  # not a column value
            params[pred.param] = (stats, pred)
        if pred.kind == "join":
            joins.append((alias, column))
        else:
            _add(plan, pred)
    for number in sorted(shape.placeholder_params - set(params)):
        # A normalized constant in the select list (``json_build_object($2, …)``): any value plans the same, and
        # without one the statement cannot even be PREPAREd for a generic plan (no type to infer).
        params[number] = (PLACEHOLDER, Predicate(None, "", "eq", param=number))
    if shape.referenced is not None and len(plans) == 1:
        plan = next(iter(plans.values()))
        plan.referenced = sorted(c for c in shape.referenced if c in plan.table.columns)
    for group in shape.or_groups:
        branches: list[TablePlan] = []
        owners: set[str] = set()
        for branch in group:
            branch_plan: TablePlan | None = None
            for pred in branch:
                found = owner(pred.qualifier, pred.column, pred.scope)
                if found is None:
                    branch_plan = None
                    break
                alias, column = found
                owners.add(alias)
                branch_plan = branch_plan or TablePlan(plans[alias].table)
                on_base = replace(pred, column=column)
                if on_base.param is not None and on_base.expression is None:
                    params[on_base.param] = (plans[alias].table.columns[column], on_base)
                _add(branch_plan, on_base)
            if branch_plan is None:
                break
            branches.append(branch_plan)
        if len(owners) == 1 and len(branches) == len(group):
            plans[owners.pop()].or_groups.append(branches)
        else:
            notes.append("an OR across tables (or over unknown columns): no set of indexes serves it")
    # A join column is an equality on the inner side of a nested loop; which side is inner is the planner's
    # choice, so both sides get a candidate and verification keeps the one that helps (usually the foreign-key
    # side: the primary-key side has its index already).
    for alias, column in joins:
        _unique_append(plans[alias].joins, column)
    if shape.order_by:
        resolved = [_order_owner(item, shape, tables, owner) for item in shape.order_by]
        owners = {r[0] for r in resolved if r is not None}
        if None not in resolved and len(owners) == 1:
            plans[owners.pop()].order = [
                OrderItem(None, r[1], item.desc) for r, item in zip(resolved, shape.order_by, strict=True) if r
            ]
    for inner in shape.inner_orders:
        found_items = [owner(item.qualifier, item.column, item.scope) for item in inner]
        aliases = {f[0] for f in found_items if f is not None}
        if None not in found_items and len(aliases) == 1:
            plan = plans[aliases.pop()]
            if not plan.order:
                plan.order = [OrderItem(None, f[1], i.desc) for f, i in zip(found_items, inner, strict=True) if f]
    return Resolution(list(plans.values()), notes, params)


_Owner = Callable[[str | None, str, Scope | None], "tuple[str, str] | None"]


def _order_owner(
    item: OrderItem, shape: QueryShape, tables: dict[str, TableInfo], owner: _Owner
) -> tuple[str, str] | None:
    if item.position is None:
        return owner(item.qualifier, item.column, item.scope)
    if item.scope is None:
        return None
    expanded = _expand(shape.targets, item.scope, tables)
    if expanded is None or len(expanded) < item.position:
        return None
    relation, column = expanded[item.position - 1]
    if relation is None or column is None:
        return None
    found = _in_relation(relation, column, tables)
    return found if isinstance(found, tuple) else None


def _expand(
    targets: list[Target], scope: Scope, tables: dict[str, TableInfo]
) -> list[tuple[Relation | None, str | None]] | None:
    """The select list with ``*`` written out in column order (the catalog's, for base tables)."""
    out: list[tuple[Relation | None, str | None]] = []
    for target in targets:
        if not target.star:
            if target.column is None:
                out.append((None, None))
                continue
            relation = _relation(scope, target.qualifier, target.column, tables)
            out.append((relation, target.column))
            continue
        relations = [r for r in scope.relations if target.qualifier in (None, r.name)]
        for relation in relations:
            if relation.table is None or relation.table not in tables:
                return None  # a subquery's or function's columns in order: not worth the bookkeeping
            out.extend((relation, name) for name in tables[relation.table].columns)
    return out


def _relation(scope: Scope, qualifier: str | None, column: str, tables: dict[str, TableInfo]) -> Relation | None:
    for relation in scope.relations:
        if qualifier is not None and relation.name == qualifier:
            return relation
        if qualifier is None and _in_relation(relation, column, tables) is not _MISSING:
            return relation
    return None


class _Missing:
    """The relation has no such column (keep looking in other relations and outer scopes)."""


class _Computed:
    """The relation has the column but it is not a base table's column an index could serve."""


_MISSING: Final = _Missing()
_COMPUTED: Final = _Computed()
_Found = tuple[str, str] | _Missing | _Computed


def _lookup(
    scope: Scope, qualifier: str | None, column: str, tables: dict[str, TableInfo], outward: bool = True
) -> _Found:
    """Where ``qualifier.column`` comes from: (unique table alias, base column), or why there is none."""
    current: Scope | None = scope
    while current is not None:
        if qualifier is not None:
            named = [r for r in current.relations if r.name == qualifier]
            if named:
                return _in_relation(named[0], column, tables)
        else:
            found = [f for r in current.relations if (f := _in_relation(r, column, tables)) is not _MISSING]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                return _COMPUTED  # ambiguous: PostgreSQL would refuse the query
        current = current.parent if outward else None
    return _MISSING


def _in_relation(relation: Relation, column: str, tables: dict[str, TableInfo], depth: int = 0) -> _Found:
    if relation.table is not None:
        info = tables.get(relation.table)
        return (relation.table, column) if info is not None and column in info.columns else _MISSING
    if relation.columns is not None:
        return _COMPUTED if column in relation.columns else _MISSING
    derived = relation.derived
    if derived is None or depth > 32:
        return _MISSING
    for output in derived.outputs:
        if output.star:
            inner = _lookup(derived.scope, output.qualifier, column, tables, outward=False)
            if inner is not _MISSING:
                return inner if derived.pushdown else _COMPUTED
        elif output.name == column:
            if output.column is None or not derived.pushdown:
                return _COMPUTED
            return _lookup(derived.scope, output.qualifier, output.column, tables, outward=False)
    return _MISSING


def _add(plan: TablePlan, pred: Predicate) -> None:
    if pred.kind == "gin":
        stats = plan.table.columns[pred.column]
        if pred.expression is not None:
            key = IndexColumn(render_expression(pred.expression, pred.column), expression=True)
        elif _gin_type(stats.type):
            key = IndexColumn(pred.column)
        else:
            return  # containment on a range or geometric type: GiST's business, not advised here
        if key not in plan.containment:
            plan.containment.append(key)
        return
    if pred.expression is not None:
        if pred.kind == "eq":
            _unique_append(plan.expressions, render_expression(pred.expression, pred.column))
        return
    if pred.kind == "eq" and pred.constant is not None:
        plan.constants.setdefault(pred.column, pred.constant)
    if pred.kind in ("eq", "null"):
        _unique_append(plan.equality, pred.column)
    elif pred.kind == "in":
        _unique_append(plan.in_list, pred.column)
    elif pred.kind == "range":
        _unique_append(plan.ranges, pred.column)


def _unique_append(items: list[str], value: str) -> None:
    if value not in items:
        items.append(value)


def btree_keyable(stats: ColumnStats) -> bool:
    """Can the column be a B-tree key? Not when its type has no default B-tree operator class (``json``, ``xml``,
    the geometric types): ``CREATE INDEX`` would fail, and no ``=`` or ORDER BY on it can use an index anyway."""
    name = stats.type.lower()
    while name.endswith("[]"):
        name = name[:-2]
    return name.split("(")[0].strip() not in NO_BTREE_TYPES


def candidates_for(plan: TablePlan) -> list[Candidate]:
    """Every shape worth costing for one table, most complete first; duplicates removed.

    Only B-tree-keyable columns become keys (:func:`btree_keyable`), and at most ``MAX_KEY_COLUMNS`` of them.
    """
    info = plan.table
    rows = info.rows

    def keyable(names: list[str]) -> list[str]:
        return [c for c in names if c in info.columns and btree_keyable(info.columns[c])]

    equality = sorted(keyable(plan.equality), key=lambda c: -info.columns[c].distinct(rows))
    in_list = [
        c for c in sorted(keyable(plan.in_list), key=lambda c: -info.columns[c].distinct(rows)) if c not in equality
    ]
    ranges = [c for c in keyable(plan.ranges) if c not in equality and c not in in_list]
    head = [IndexColumn(c) for c in equality]
    found: list[Candidate] = []
    sortable = all(o.column in info.columns and btree_keyable(info.columns[o.column]) for o in plan.order)
    plan_order = plan.order if sortable else []
    joins = keyable(plan.joins)

    def offer(
        columns: list[IndexColumn],
        reason: str,
        free: int = len(equality),
        where: str | None = None,
        ordered: bool = False,
    ) -> None:
        columns = columns[:MAX_KEY_COLUMNS]
        if not columns:
            return
        key = f"{info.schema}.{info.name}"
        candidate = Candidate(info, key, tuple(columns), min(free, len(columns)), reason, where, ordered=ordered)
        if candidate not in found:
            found.append(candidate)

    eq_words = _describe(equality, info, rows)
    for column, value in plan.constants.items():
        share = _share(info.columns[column], value, rows)
        distinct = info.columns[column].distinct(rows)
        if column not in equality or share is None or share > RARE_SHARE or share > 0.5 / distinct:
            continue  # not rare, or not rarer than the column's values are on average (no skew)
        # A rare value of a column with few values (``status = 'failed'``): a partial index holds only its rows,
        # a fraction of the size of a full one, and the query's other columns become its keys.
        rest = [c for c in equality if c != column]
        sort = [o for o in plan_order if o.column not in equality] if not in_list else []
        flip_tail = not rest and all(o.desc for o in sort)  # read backwards, as above
        tail = [IndexColumn(o.column, o.desc and not flip_tail) for o in sort]
        keys = [IndexColumn(c) for c in rest] + (tail or [IndexColumn(c) for c in in_list + ranges[:1]])
        where = f"{quote_ident(column)} = {render_constant(value)}"
        offer(
            keys or [IndexColumn(column)],
            f"{column} = {value!r} is rare (~{share:.1%} of the rows): a partial index holds only those rows",
            len(rest),
            where,
            ordered=bool(tail),
        )
    order = [o for o in plan_order if o.column not in equality]
    if order and not in_list:
        # A B-tree is read backwards as cheaply as forwards: an index that is nothing but a descending sort key
        # is written ascending, the usual form, which serves ORDER BY … ASC as well (Dexter writes it so too).
        flip = not equality and all(o.desc for o in order)
        tail = [IndexColumn(o.column, o.desc and not flip) for o in order]
        sort_words = ", ".join(c.sql() for c in tail)
        offer(
            head + tail,
            (f"equality on {eq_words}, then " if equality else "")
            + f"ORDER BY {sort_words}: one index scan returns the rows already sorted"
            + (", and LIMIT stops after the first ones" if plan_order else ""),
            ordered=True,
        )
    in_words = f"IN list on {', '.join(in_list)}, then " if in_list else ""
    for column in ranges:
        offer(
            head + [IndexColumn(c) for c in in_list] + [IndexColumn(column)],
            (f"equality on {eq_words}, then " if equality else "") + in_words + f"range on {column}",
            len(equality) + len(in_list),
        )
    if in_list:
        offer(
            head + [IndexColumn(c) for c in in_list],
            (f"equality on {eq_words}, then " if equality else "") + f"IN list on {', '.join(in_list)}",
            len(equality) + len(in_list),
        )
    for expression in plan.expressions:
        key = IndexColumn(expression, expression=True)
        words = (f"equality on {eq_words} and " if equality else "") + f"on the expression {expression}"
        offer([*head, key], words, len(equality) + 1)
        offer([key], f"equality on the expression {expression}: an index on the expression serves it", 1)
    for key in plan.containment:
        what = f"the expression {key.name}" if key.expression else key.name
        found.append(
            Candidate(
                info,
                f"{info.schema}.{info.name}",
                (key,),
                0,
                f"containment / full-text match on {what}: a GIN index serves it, a B-tree cannot",
                method="gin",
            )
        )
    if equality:
        offer(head, f"equality on {eq_words}")
        if len(equality) > 1:
            offer(head[:1], f"equality on {_describe(equality[:1], info, rows)} (most selective column alone)", 1)
    for column in joins:
        others = [c for c in equality if c != column]
        sort = [o for o in plan_order if o.column != column and o.column not in others] if not in_list else []
        if sort:  # a correlated lookup (LATERAL top-n) that also wants its rows in order
            offer(
                [IndexColumn(column)]
                + [IndexColumn(c) for c in others]
                + [IndexColumn(o.column, o.desc) for o in sort],
                f"join on {column}, then ORDER BY {', '.join(o.column for o in sort)}: each lookup returns its "
                "rows already sorted, and LIMIT stops after the first ones",
                1 + len(others),
                ordered=True,
            )
        offer(
            [IndexColumn(column)] + [IndexColumn(c) for c in others],
            f"join on {column}"
            + (f" plus equality on {_describe(others, info, rows)}" if others else "")
            + ": the lookup side of a nested-loop join",
            1 + len(others),
        )
        offer([IndexColumn(column)], f"join on {column}: the lookup side of a nested-loop join", 1)
    if found and plan.referenced:  # after every key shape, so an equality-only lookup gets one too
        # The query reads a few more columns than the best index's keys: stored as INCLUDE columns, the index
        # answers it alone (an index-only scan, no heap fetch once VACUUM has marked the pages all-visible).
        best = next((c for c in found if c.method == "btree"), found[0])
        key_names = {c.name for c in best.columns if not c.expression}
        extra = tuple(c for c in plan.referenced if c not in key_names)
        plain = best.method == "btree" and not any(c.expression for c in best.columns)
        if 0 < len(extra) <= MAX_INCLUDE and plain:
            wider = replace(
                best, include=extra, reason=best.reason + f"; INCLUDE ({', '.join(extra)}): index-only scan"
            )
            if wider not in found:
                found.append(wider)
    return found


def _gin_type(type_name: str) -> bool:
    name = type_name.lower()
    return name in ("jsonb", "tsvector") or name.endswith("[]")


def bundles_for(plan: TablePlan) -> list[tuple[Candidate, ...]]:
    """For each ``a = 1 OR b = 2`` on the table: one index per branch (each branch's best shape), which the
    planner reads together as a BitmapOr. None of them helps alone, so they are costed and chosen as one."""
    bundles: list[tuple[Candidate, ...]] = []
    for group in plan.or_groups:
        parts: list[Candidate] = []
        for branch in group:
            options = candidates_for(branch)
            if not options:
                break
            if options[0] not in parts:
                parts.append(options[0])
        else:
            bundle = tuple(parts)
            if len(bundle) > 1 and bundle not in bundles:
                bundles.append(bundle)
    return bundles


def _share(stats: ColumnStats, value: str, rows: float) -> float | None:
    """The fraction of rows with ``value``, from pg_stats; None unless the column has few distinct values (a
    status, a kind: where a partial index per value makes sense) and statistics to tell."""
    distinct = stats.distinct(rows)
    if not stats.mcv or not 0 < distinct <= PARTIAL_MAX_DISTINCT:
        return None
    if value in stats.mcv:
        return stats.mcf[stats.mcv.index(value)] if len(stats.mcf) == len(stats.mcv) else None
    others = distinct - len(stats.mcv)
    rest = max(0.0, 1.0 - sum(stats.mcf) - (stats.null_frac or 0.0))
    return rest / others if others > 0 else 0.0


def _describe(columns: list[str], info: TableInfo, rows: float) -> str:
    parts = []
    for name in columns:
        distinct = info.columns[name].distinct(rows)
        parts.append(f"{name} (~{distinct:,.0f} distinct)" if distinct else name)
    return ", ".join(parts)


def covering_index(candidate: Candidate) -> ExistingIndex | None:
    """An existing valid, non-partial B-tree that already has the candidate's columns as its leading columns."""
    for index in candidate.table.indexes:
        if index.method != candidate.method or not index.valid or index.partial:
            continue
        columns = tuple(IndexColumn(name, desc) for name, desc in index.columns)
        if any(c.expression for c in candidate.columns):
            keys = index_keys(index.definition) or []
            columns = tuple(IndexColumn(name, desc, expression) for name, desc, expression in keys)
        if candidate.include and not set(candidate.include) <= {c.name for c in columns} | set(
            index_including(index.definition)
        ):
            continue
        if _prefix_of(candidate, columns):
            return index
    return None


def _prefix_of(candidate: Candidate, columns: tuple[IndexColumn, ...]) -> bool:
    """Does an index on ``columns`` serve ``candidate``? Equality columns match as a set; the tail must match
    in order and direction (or all directions reversed: a B-tree scans backwards as well)."""
    wanted = candidate.columns
    if len(columns) < len(wanted):
        return False
    eq = candidate.equality
    if {c.name for c in columns[:eq]} != {c.name for c in wanted[:eq]}:
        return False
    tail, have = wanted[eq:], columns[eq : len(wanted)]
    if [c.name for c in tail] != [c.name for c in have]:
        return False
    same = all(a.desc == b.desc for a, b in zip(tail, have, strict=True))
    flipped = all(a.desc != b.desc for a, b in zip(tail, have, strict=True))
    return same or flipped
