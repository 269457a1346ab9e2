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

from dataclasses import dataclass, field

from pgpulse.advisor.catalog import ColumnStats, ExistingIndex, TableInfo
from pgpulse.advisor.parse import OrderItem, Predicate, QueryShape

MAX_NAME = 63


@dataclass(frozen=True)
class IndexColumn:
    name: str
    desc: bool = False

    def sql(self) -> str:
        return f"{_quote(self.name)} DESC" if self.desc else _quote(self.name)


@dataclass(frozen=True)
class Candidate:
    table: TableInfo = field(compare=False, hash=False)
    table_key: str  # schema.name, for equality and hashing
    columns: tuple[IndexColumn, ...]
    equality: int  # how many leading columns are equality columns (their order among themselves is free)
    reason: str = field(compare=False, default="")

    @property
    def name(self) -> str:
        base = "ix_" + self.table.name + "_" + "_".join(c.name for c in self.columns)
        return base[:MAX_NAME]

    def column_list(self) -> str:
        return ", ".join(c.sql() for c in self.columns)

    def create_sql(self, concurrently: bool = True, name: str | None = None) -> str:
        how = "CONCURRENTLY " if concurrently else ""
        return f"CREATE INDEX {how}{_quote(name or self.name)} ON {self.table.qualified} ({self.column_list()})"

    def covers(self, other: Candidate) -> bool:
        """True when this index serves everything ``other`` would (``other`` is a prefix, modulo free order)."""
        return self.table_key == other.table_key and _prefix_of(other, self.columns)


@dataclass
class TablePlan:
    """The per-table reading of a query: its predicates resolved to this table's columns."""

    table: TableInfo
    equality: list[str] = field(default_factory=list)
    in_list: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)  # columns equated with another table's column
    order: list[OrderItem] = field(default_factory=list)  # only when every ORDER BY column is on this table


@dataclass
class Resolution:
    plans: list[TablePlan]
    notes: list[str]  # predicates that could not be attached (ambiguous or unknown columns)
    params: dict[int, tuple[ColumnStats, Predicate]]  # $n -> the column it is compared with


def resolve(shape: QueryShape, tables: dict[str, TableInfo]) -> Resolution:
    """Attach each predicate to its table (by alias, or by the unique table holding an unqualified column).

    ``tables`` maps each alias of ``shape.tables`` to its catalog entry.
    """
    plans = {alias: TablePlan(info) for alias, info in tables.items()}
    notes: list[str] = []
    params: dict[int, tuple[ColumnStats, Predicate]] = {}

    def owner(qualifier: str | None, column: str) -> str | None:
        if qualifier is not None:
            alias = qualifier if qualifier in plans else None
            if alias is None:  # qualified by the table name although it has an alias
                alias = next((a for a, p in plans.items() if p.table.name == qualifier), None)
            return alias if alias is not None and column in plans[alias].table.columns else None
        holders = [a for a, p in plans.items() if column in p.table.columns]
        return holders[0] if len(holders) == 1 else None

    joins: list[tuple[str, str]] = []
    for pred in shape.predicates:
        alias = owner(pred.qualifier, pred.column)
        if alias is None:
            notes.append(f"column {pred.column!r} not found in exactly one table of the query: skipped")
            continue
        plan = plans[alias]
        if pred.param is not None:
            params[pred.param] = (plan.table.columns[pred.column], pred)
        if pred.kind == "join":
            joins.append((alias, pred.column))
        else:
            _add(plan, pred)
    # A join column is an equality on the inner side of a nested loop; which side is inner is the planner's
    # choice, so both sides get a candidate and verification keeps the one that helps (usually the foreign-key
    # side: the primary-key side has its index already).
    for alias, column in joins:
        _unique_append(plans[alias].joins, column)
    if shape.order_by:
        owners = {owner(item.qualifier, item.column) for item in shape.order_by}
        if len(owners) == 1 and None not in owners:
            plans[owners.pop() or ""].order = list(shape.order_by)
    return Resolution(list(plans.values()), notes, params)


def _add(plan: TablePlan, pred: Predicate) -> None:
    if pred.kind in ("eq", "null"):
        _unique_append(plan.equality, pred.column)
    elif pred.kind == "in":
        _unique_append(plan.in_list, pred.column)
    elif pred.kind == "range":
        _unique_append(plan.ranges, pred.column)


def _unique_append(items: list[str], value: str) -> None:
    if value not in items:
        items.append(value)


def candidates_for(plan: TablePlan) -> list[Candidate]:
    """Every shape worth costing for one table, most complete first; duplicates removed."""
    info = plan.table
    rows = info.rows
    equality = sorted(plan.equality, key=lambda c: -info.columns[c].distinct(rows))
    in_list = [c for c in sorted(plan.in_list, key=lambda c: -info.columns[c].distinct(rows)) if c not in equality]
    ranges = [c for c in plan.ranges if c not in equality and c not in in_list]
    head = [IndexColumn(c) for c in equality]
    found: list[Candidate] = []

    def offer(columns: list[IndexColumn], reason: str, free: int = len(equality)) -> None:
        if not columns:
            return
        candidate = Candidate(info, f"{info.schema}.{info.name}", tuple(columns), min(free, len(columns)), reason)
        if candidate not in found:
            found.append(candidate)

    eq_words = _describe(equality, info, rows)
    order = [o for o in plan.order if o.column not in equality]
    if order and not in_list:
        tail = [IndexColumn(o.column, o.desc) for o in order]
        sort_words = ", ".join(c.sql() for c in tail)
        offer(
            head + tail,
            (f"equality on {eq_words}, then " if equality else "")
            + f"ORDER BY {sort_words}: one index scan returns the rows already sorted"
            + (", and LIMIT stops after the first ones" if plan.order else ""),
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
    if equality:
        offer(head, f"equality on {eq_words}")
        if len(equality) > 1:
            offer(head[:1], f"equality on {_describe(equality[:1], info, rows)} (most selective column alone)", 1)
    for column in plan.joins:
        others = [c for c in equality if c != column]
        offer(
            [IndexColumn(column)] + [IndexColumn(c) for c in others],
            f"join on {column}"
            + (f" plus equality on {_describe(others, info, rows)}" if others else "")
            + ": the lookup side of a nested-loop join",
            1 + len(others),
        )
        offer([IndexColumn(column)], f"join on {column}: the lookup side of a nested-loop join", 1)
    return found


def _describe(columns: list[str], info: TableInfo, rows: float) -> str:
    parts = []
    for name in columns:
        distinct = info.columns[name].distinct(rows)
        parts.append(f"{name} (~{distinct:,.0f} distinct)" if distinct else name)
    return ", ".join(parts)


def covering_index(candidate: Candidate) -> ExistingIndex | None:
    """An existing valid, non-partial B-tree that already has the candidate's columns as its leading columns."""
    for index in candidate.table.indexes:
        if index.method != "btree" or not index.valid or index.partial:
            continue
        columns = tuple(IndexColumn(name, desc) for name, desc in index.columns)
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


def _quote(name: str) -> str:
    return name if name.isidentifier() and name == name.lower() else '"' + name.replace('"', '""') + '"'
