"""What a query asks of its tables, read with pglast (PostgreSQL's own parser), for choosing index columns.

The whole tree is read, the way the planner sees it: tables in CTEs, subqueries in ``FROM`` (``LATERAL`` too),
``IN (SELECT …)``, ``EXISTS``, scalar subqueries, ``UNION`` branches, ``UPDATE … FROM`` / ``DELETE … USING``,
and views (their definitions, from the catalog, are read like subqueries: see :mod:`pgpulse.advisor.views`).
Every ``FROM`` item is a :class:`Relation` in a :class:`Scope`; a column is looked up the way PostgreSQL does it
(innermost scope first, then the enclosing ones), but only later, in :func:`pgpulse.advisor.candidates.resolve`,
when the catalog says which table has which column. A predicate on a CTE's or subquery's output column reaches the
base table only where the planner pushes it down (not through ``MATERIALIZED`` CTEs, ``LIMIT`` or set operations).

Only what an ordinary B-tree can serve is kept: columns compared with ``=`` / ``IN`` / ``= ANY`` / ``IS NULL``
to a value, range comparisons (``<``, ``>=``, ``BETWEEN``), columns equated across a join (``IN (SELECT …)`` is a
join too), and ORDER BY columns with their direction (by name, output alias or select-list position). Predicates
under OR or NOT, and expressions on columns (``lower(email) = $1``), cannot be served by a plain column index and
are left out — except the optional filter drivers and ORMs write, ``($2 IS NULL OR id > $2)``, which is the
comparison whenever the parameter is given. SQL as drivers send it is read as such: typed parameters
(``$1::BIGINT``, ``LIMIT $3::INTEGER``), expanded IN lists (``IN ($1::BIGINT, $2::BIGINT)``), ``= ANY($1)``,
pg_stat_statements' normalized text. Parameter numbers come from the parse tree's ``ParamRef`` nodes, never from
the text (``'$3'`` in a string literal is not a parameter). Parameters stay parameters: the verifier fills them
with representative values from ``pg_stats``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Literal

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, CTEMaterialize, NullTestType, SetOperation, SortByDir, SubLinkType

from pgpulse.errors import one_line

RANGE_OPS = {"<", ">", "<=", ">="}
FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "="}
MAX_VIEW_DEPTH = 16  # views defined on views: deeper than this is a loop or not worth following


# Types whose input accepts the text '0': a normalized constant cast to one of them can be given that value.
ZERO_TYPES = frozenset(
    {"int2", "int4", "int8", "numeric", "float4", "float8", "bool", "text", "varchar", "bpchar", "json", "jsonb"}
)


class UnsupportedQuery(ValueError):
    """The statement cannot be analysed (not SQL, not a single SELECT/UPDATE/DELETE); the message says why."""


class NotAQuery(UnsupportedQuery):
    """A statement no index can speed up (transaction control, SET/SHOW, INSERT … VALUES, no table read): the
    normal noise of a server log or pg_stat_statements, not a failure to report."""


@dataclass(frozen=True)
class TableRef:
    name: str
    schema: str | None
    alias: str  # unique within the shape: the name the query uses for it, suffixed "#n" when used again
    view: str | None = None  # the view this table was read through, if any


# What a predicate compares a column with: one value (``=``), a list (``IN``/``= ANY``), ``IS NULL``, a range
# (``<``, ``BETWEEN``…), another table's column (a join), or a containment/full-text operator (an index on gin).
PredicateKind = Literal["eq", "in", "null", "range", "join", "gin"]


@dataclass(frozen=True)
class Predicate:
    qualifier: str | None  # table alias/name as written; None when the column is unqualified
    column: str
    kind: PredicateKind
    op: str = "="
    param: int | None = None  # $n compared with the column, for representative values
    params: tuple[int, ...] = ()  # every $n compared with the column (an expanded IN list has several)
    scope: Scope | None = field(default=None, compare=False, hash=False, repr=False)  # where the column is looked up
    # ``lower(email) = $1``: the expression over ``column`` (an index on the expression serves it), else None
    expression: Any = field(default=None, compare=False, hash=False, repr=False)
    constant: str | None = None  # ``status = 'failed'``: the constant's text (a partial index may suit a rare one)


@dataclass(frozen=True)
class OrderItem:
    qualifier: str | None
    column: str
    desc: bool
    position: int | None = None  # ORDER BY n over a select list with ``*``: expanded from the catalog
    scope: Scope | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Target:
    """One select-list entry, for ORDER BY by position or alias: a column, ``*`` / ``t.*``, or an expression."""

    name: str | None  # output name
    qualifier: str | None
    column: str | None  # None for an expression
    star: bool = False


@dataclass(eq=False)
class Derived:
    """A subquery, CTE or view body seen from outside: its output columns and whether filters reach inside."""

    scope: Scope
    outputs: list[Target]
    pushdown: bool  # False: MATERIALIZED CTE, LIMIT/OFFSET, set operation — an outer filter stays outside


@dataclass(eq=False)
class Relation:
    """One ``FROM`` item: a base table (``table`` = its unique alias in the shape) or a derived relation."""

    name: str  # the name the query qualifies its columns with
    table: str | None = None
    derived: Derived | None = None
    columns: tuple[str, ...] | None = None  # known output names (a function's column aliases); None: ask catalog


@dataclass(eq=False)
class Scope:
    relations: list[Relation] = field(default_factory=list)
    parent: Scope | None = None
    ctes: dict[str, Derived] = field(default_factory=dict)

    def cte(self, name: str) -> Derived | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return scope.ctes[name]
            scope = scope.parent
        return None


StatementKind = Literal["select", "insert", "update", "delete"]


@dataclass
class QueryShape:
    sql: str
    statement: StatementKind
    tables: list[TableRef] = field(default_factory=list)
    predicates: list[Predicate] = field(default_factory=list)
    order_by: list[OrderItem] = field(default_factory=list)
    has_limit: bool = False
    limit_param: int | None = None
    offset_param: int | None = None
    params: set[int] = field(default_factory=set)
    targets: list[Target] = field(default_factory=list)  # the top-level select list
    scope: Scope | None = None  # the top-level FROM scope
    views: set[tuple[str | None, str]] = field(default_factory=set)  # views read (expanded when definitions given)
    # $n in the select list (pg_stat_statements' normalized constants, ``json_build_object($2, u.id)``): the plan
    # does not depend on them, but PREPARE cannot infer a type for some, so they get the placeholder value '0'
    placeholder_params: set[int] = field(default_factory=set)
    # ``a = 1 OR b = 2``: each group's branches, each branch its AND-ed predicates (see _Reader.or_group)
    or_groups: list[tuple[tuple[Predicate, ...], ...]] = field(default_factory=list)
    # every column name the query mentions, when it reads one table and no ``*`` (else None): what an index
    # must hold for an index-only scan
    referenced: set[str] | None = None
    inner_orders: list[list[OrderItem]] = field(default_factory=list)  # subqueries' ORDER BY … LIMIT


ViewDefinitions = Mapping[tuple[str | None, str], str]


def analyze(sql: str, views: ViewDefinitions | None = None) -> QueryShape:
    """The shape of one statement. ``views`` maps ``(schema, name)`` (schema None: found on the search path) to
    the view's defining SELECT; a view not in it is taken for a table."""
    stmt = _parse_one(sql)
    inserts_rows = isinstance(stmt, ast.InsertStmt) and (
        not isinstance(stmt.selectStmt, ast.SelectStmt) or stmt.selectStmt.valuesLists is not None
    )
    if not isinstance(stmt, (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt, ast.InsertStmt)) or inserts_rows:
        what = "INSERT … VALUES" if inserts_rows else type(stmt).__name__
        raise NotAQuery(f"{what} is not a query an index can speed up")
    reader = _Reader(sql, views or {})
    reader.statement(stmt)
    shape = reader.shape
    if not shape.tables:
        raise NotAQuery("the query reads no table")
    nodes = _walk(stmt)
    shape.params = {n.number for n in nodes if isinstance(n, ast.ParamRef) and n.number is not None}
    simple = shape.scope is not None and all(r.table is not None for r in shape.scope.relations)
    if len(shape.tables) == 1 and simple and not any(isinstance(n, ast.A_Star) for n in nodes):
        shape.referenced = {str(n.fields[-1].sval) for n in nodes if isinstance(n, ast.ColumnRef) and n.fields}
    shape.placeholder_params = _placeholders(stmt) - {p.param for p in shape.predicates if p.param is not None}
    return shape


def _parse_one(sql: str) -> Any:
    try:
        statements = parse_sql(sql)
    except Exception as exc:
        message = one_line(exc)
        raise UnsupportedQuery(f"not valid PostgreSQL SQL: {message}") from exc
    if len(statements) != 1:
        raise UnsupportedQuery(f"expected one statement, got {len(statements)}")
    return statements[0].stmt


class _Reader:
    def __init__(self, sql: str, views: ViewDefinitions) -> None:
        self.views = views
        self.shape = QueryShape(sql=sql, statement="select")
        self.used: dict[str, int] = {}
        self.cte_uses: dict[str, int] = {}
        self.view_stack: list[str] = []

    # statements -------------------------------------------------------------------------------------------

    def statement(self, stmt: Any) -> None:
        self.cte_uses = _cte_references(stmt)
        if isinstance(stmt, ast.SelectStmt):
            scope = self.select(stmt, None, top=True)
            self.shape.scope = scope
        elif isinstance(stmt, ast.InsertStmt):  # INSERT … SELECT: the SELECT is what an index can speed up
            self.shape.statement = "insert"
            scope = Scope()
            self.with_clause(stmt.withClause, scope)
            self.shape.scope = self.select(stmt.selectStmt, scope)
        else:
            self.shape.statement = "update" if isinstance(stmt, ast.UpdateStmt) else "delete"
            scope = Scope()
            self.with_clause(stmt.withClause, scope)
            self.from_item(stmt.relation, scope)
            extra = stmt.fromClause if isinstance(stmt, ast.UpdateStmt) else stmt.usingClause
            for item in extra or ():
                self.from_item(item, scope)
            self.where(stmt.whereClause, scope)
            if isinstance(stmt, ast.UpdateStmt):
                for target in stmt.targetList or ():
                    self.sublinks(target.val, scope)
            self.shape.scope = scope

    def select(self, stmt: Any, parent: Scope | None, top: bool = False) -> Scope:
        """Read one SELECT (every branch of a set operation); returns the scope of its FROM clause."""
        scope = Scope(parent=parent)
        self.with_clause(stmt.withClause, scope)
        if stmt.op is not None and stmt.op != SetOperation.SETOP_NONE:
            for branch in (stmt.larg, stmt.rarg):
                if branch is not None:
                    self.select(branch, scope)
            return scope
        for item in stmt.fromClause or ():
            self.from_item(item, scope)
        self.where(stmt.whereClause, scope)
        self.where(stmt.havingClause, scope)
        targets = [self.target(t, scope) for t in stmt.targetList or ()]
        if top:
            self.shape.targets = targets
            self.order(stmt, scope, targets)
        else:
            items: list[OrderItem] = []
            for sort in stmt.sortClause or ():
                self.sublinks(sort.node, scope)
                item = self.order_item(sort, scope, targets)
                if item is None:
                    break
                items.append(item)
            if items and stmt.limitCount is not None:
                # a subquery's ORDER BY … LIMIT (the LATERAL top-n): an index in that order stops early too
                self.shape.inner_orders.append(items)
        return scope

    def order(self, stmt: Any, scope: Scope, targets: list[Target]) -> None:
        for sort in stmt.sortClause or ():
            self.sublinks(sort.node, scope)
            item = self.order_item(sort, scope, targets)
            if item is None:
                break  # an expression in ORDER BY: the columns after it cannot be served in order either
            self.shape.order_by.append(item)
        limit = _unwrap(stmt.limitCount)
        if stmt.limitCount is not None and not (isinstance(limit, ast.A_Const) and limit.isnull):
            self.shape.has_limit = True  # LIMIT NULL / LIMIT ALL is no limit
            if isinstance(limit, ast.ParamRef):
                self.shape.limit_param = limit.number
        offset = _unwrap(stmt.limitOffset)
        if isinstance(offset, ast.ParamRef):
            self.shape.offset_param = offset.number

    def order_item(self, sort: Any, scope: Scope, targets: list[Target]) -> OrderItem | None:
        desc = sort.sortby_dir == SortByDir.SORTBY_DESC
        node = sort.node
        if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
            position = int(node.val.ival or 0)
            if any(t.star for t in targets[:position]):
                return OrderItem(None, "", desc, position, scope)  # "*" before it: the catalog knows the columns
            if not 1 <= position <= len(targets):
                return None
            target = targets[position - 1]
            if target.column is None:
                return None
            return OrderItem(target.qualifier, target.column, desc, None, scope)
        column = _column(node)
        if column is None:
            return None
        if column[0] is None:  # a bare name is an output column's name first (SQL-92), then an input column
            named = [t for t in targets if t.name == column[1] and not t.star]
            if len(named) == 1:
                if named[0].column is None:
                    return None
                return OrderItem(named[0].qualifier, named[0].column, desc, None, scope)
        return OrderItem(column[0], column[1], desc, None, scope)

    def target(self, res: Any, scope: Scope) -> Target:
        self.sublinks(res.val, scope)
        return _output(res)

    def with_clause(self, clause: Any, scope: Scope) -> None:
        if clause is None:
            return
        if clause.recursive:  # the bodies name themselves: known as CTEs (whose filters stay outside) up front
            for cte in clause.ctes or ():
                scope.ctes[str(cte.ctename)] = Derived(Scope(), [], pushdown=False)
        for cte in clause.ctes or ():
            query = cte.ctequery
            name = str(cte.ctename)
            if not isinstance(query, ast.SelectStmt):
                # a data-modifying CTE (INSERT/UPDATE/DELETE … RETURNING): its own statement's business; known by
                # name, so reading it is not mistaken for a table (its rows' columns are opaque here)
                scope.ctes[name] = Derived(Scope(), [], pushdown=False)
                continue
            inner = self.select(query, scope)
            materialized = cte.ctematerialized == CTEMaterialize.CTEMaterializeAlways
            inline = cte.ctematerialized == CTEMaterialize.CTEMaterializeNever or self.cte_uses.get(name, 0) <= 1
            pushdown = not clause.recursive and not materialized and inline and _pushable(query)
            outputs = _rename(_outputs(query), cte.aliascolnames)
            scope.ctes[name] = Derived(inner, outputs, pushdown)

    # FROM ---------------------------------------------------------------------------------------------------

    def from_item(self, node: Any, scope: Scope) -> list[Relation]:
        """Add the relations of one FROM item to ``scope``; returns them (for JOIN … USING)."""
        if isinstance(node, ast.RangeVar):
            return [self.range_var(node, scope)]
        if isinstance(node, ast.JoinExpr):
            left = self.from_item(node.larg, scope)
            right = self.from_item(node.rarg, scope)
            self.where(node.quals, scope)
            for name in node.usingClause or ():
                column = str(name.sval)
                self.shape.predicates.append(Predicate(None, column, "join", scope=Scope(left)))
                self.shape.predicates.append(Predicate(None, column, "join", scope=Scope(right)))
            return left + right
        if isinstance(node, ast.RangeSubselect):
            alias = str(node.alias.aliasname) if node.alias is not None else ""
            query = node.subquery
            if not isinstance(query, ast.SelectStmt):
                return []
            # A LATERAL subquery sees the FROM items before it; any other sees only the enclosing queries —
            # parenting both on this scope finds the same columns for every query PostgreSQL accepts.
            inner = self.select(query, scope)
            outputs = _rename(_outputs(query), node.alias.colnames if node.alias is not None else None)
            relation = Relation(alias, derived=Derived(inner, outputs, _pushable(query)))
            scope.relations.append(relation)
            return [relation]
        if isinstance(node, ast.RangeFunction):
            for function in node.functions or ():
                for part in function or ():
                    self.sublinks(part, scope)
            fn_alias = node.alias
            name = str(fn_alias.aliasname) if fn_alias is not None else _function_name(node)
            names = tuple(str(c.sval) for c in fn_alias.colnames or ()) if fn_alias is not None else ()
            relation = Relation(name, columns=names or (name,))
            scope.relations.append(relation)
            return [relation]
        return []

    def range_var(self, node: Any, scope: Scope) -> Relation:
        relname = str(node.relname)
        written = str(node.alias.aliasname) if node.alias is not None else relname
        if node.schemaname is None:
            cte = scope.cte(relname)
            if cte is not None:
                relation = Relation(written, derived=cte)
                scope.relations.append(relation)
                return relation
        definition = self.view_definition(node.schemaname, relname)
        if definition is not None:
            key = f"{node.schemaname}.{relname}" if node.schemaname else relname
            self.shape.views.add((node.schemaname, relname))
            try:
                query = _parse_one(definition)
            except UnsupportedQuery:
                query = None
            if isinstance(query, ast.SelectStmt) and len(self.view_stack) < MAX_VIEW_DEPTH:
                self.view_stack.append(key)
                saved, self.cte_uses = self.cte_uses, _cte_references(query)
                try:
                    inner = self.select(query, None)  # a view sees nothing of the query that reads it
                    outputs = _rename(_outputs(query), node.alias.colnames if node.alias is not None else None)
                finally:
                    self.view_stack.pop()
                    self.cte_uses = saved
                relation = Relation(written, derived=Derived(inner, outputs, _pushable(query)))
                scope.relations.append(relation)
                return relation
        count = self.used.get(written, 0) + 1
        self.used[written] = count
        unique = written if count == 1 else f"{written}#{count}"
        view = self.view_stack[-1] if self.view_stack else None
        self.shape.tables.append(TableRef(relname, node.schemaname, unique, view))
        relation = Relation(written, table=unique)
        scope.relations.append(relation)
        return relation

    def view_definition(self, schema: str | None, name: str) -> str | None:
        if schema is not None:
            return self.views.get((schema, name))
        return self.views.get((None, name))

    # WHERE --------------------------------------------------------------------------------------------------

    def where(self, node: Any, scope: Scope) -> None:
        if node is None:
            return
        self.conditions(node, scope)
        self.sublinks(node, scope)

    def conditions(self, node: Any, scope: Scope) -> None:
        if isinstance(node, ast.BoolExpr):
            if node.boolop == BoolExprType.AND_EXPR:
                for arg in node.args or ():
                    self.conditions(arg, scope)
            elif node.boolop == BoolExprType.OR_EXPR:
                given = _optional_filter(node)
                if given is not None:
                    self.conditions(given, scope)
                else:
                    self.or_group(node, scope)
            return  # NOT: no index range serves it
        add = self.shape.predicates.append
        if isinstance(node, ast.NullTest):
            column = _column(node.arg)
            if column and node.nulltesttype == NullTestType.IS_NULL:
                add(Predicate(column[0], column[1], "null", "IS NULL", scope=scope))
            return
        if not isinstance(node, ast.A_Expr) or not node.name:
            return
        op = node.name[-1].sval
        left = _column(node.lexpr)
        right = _column(node.rexpr) if not isinstance(node.rexpr, (tuple, list)) else None
        if node.kind == A_Expr_Kind.AEXPR_OP:
            if op == "=" and left and right:
                add(Predicate(left[0], left[1], "join", scope=scope))
                add(Predicate(right[0], right[1], "join", scope=scope))
                return
            if op in GIN_OPERATORS:
                self.containment(node, op, scope)
                return
            if op not in RANGE_OPS and op != "=":
                return
            expression = None
            if left and _is_value(node.rexpr):
                column, value = left, node.rexpr
            elif right and _is_value(node.lexpr):
                column, value, op = right, node.lexpr, FLIP[op]
            elif (found := _indexable_expression(node.lexpr)) and _is_value(node.rexpr):
                (column, expression), value = found, node.rexpr
            elif (found := _indexable_expression(node.rexpr)) and _is_value(node.lexpr):
                (column, expression), value, op = found, node.lexpr, FLIP[op]
            else:
                return
            kind: PredicateKind = "eq" if op == "=" else "range"
            number = _param(value)
            constant = _constant(value) if expression is None else None
            add(Predicate(column[0], column[1], kind, op, number, _direct(number), scope, expression, constant))
        elif node.kind in (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_OP_ANY) and op == "=" and left:
            values = node.rexpr if isinstance(node.rexpr, (tuple, list)) else (node.rexpr,)
            if all(_is_value(v) for v in values):
                numbers = tuple(n for v in values if (n := _param(v)) is not None)
                if len(values) == 1 and node.kind == A_Expr_Kind.AEXPR_IN:
                    # ``IN ($1)`` is ``= $1``: one scalar value
                    add(Predicate(left[0], left[1], "eq", "=", _param(values[0]), numbers, scope))
                    return
                param = _param(values[0]) if len(values) == 1 else None
                add(Predicate(left[0], left[1], "in", "IN", param, numbers, scope))
        elif node.kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM) and left:
            bounds = node.rexpr if isinstance(node.rexpr, (tuple, list)) and len(node.rexpr) == 2 else (None, None)
            low, high = _param(bounds[0]), _param(bounds[1])
            add(Predicate(left[0], left[1], "range", ">=", low, _direct(low), scope))
            add(Predicate(left[0], left[1], "range", "<=", high, _direct(high), scope))

    def containment(self, node: Any, op: str, scope: Scope) -> None:
        """``tags @> $1``, ``payload ? 'k'``, ``to_tsvector('english', body) @@ q``: what a GIN index serves."""
        column = _column(node.lexpr)
        expression = None
        if column is None and (found := _indexable_expression(node.lexpr, TEXT_SEARCH_FUNCTIONS)):
            column, expression = found
        if column and _is_value(node.rexpr):
            number = _param(node.rexpr)
            pred = Predicate(column[0], column[1], "gin", op, number, _direct(number), scope, expression)
            self.shape.predicates.append(pred)

    def or_group(self, node: Any, scope: Scope) -> None:
        """``a = 1 OR b = 2``: one index per branch, read together as a BitmapOr. Kept apart from the AND-ed
        predicates: no single index serves the group, and no branch alone serves the query."""
        branches: list[tuple[Predicate, ...]] = []
        saved = self.shape.predicates
        try:
            for arg in node.args or ():
                self.shape.predicates = []
                self.conditions(arg, scope)
                found = [p for p in self.shape.predicates if p.kind in ("eq", "in", "range", "null")]
                if not found:
                    return  # a branch no index serves: the whole OR needs a scan anyway
                branches.append(tuple(found))
        finally:
            self.shape.predicates = saved
        self.shape.or_groups.append(tuple(branches))

    def sublinks(self, node: Any, scope: Scope) -> None:
        """Read every subquery inside an expression (EXISTS, IN (SELECT …), scalar), each in its own scope."""
        for sublink in _sublinks(node):
            query = sublink.subselect
            if not isinstance(query, ast.SelectStmt):
                continue
            inner = self.select(query, scope)
            if sublink.subLinkType == SubLinkType.ANY_SUBLINK and sublink.testexpr is not None:
                names = [n.sval for n in sublink.operName or ()]
                outer = _column(sublink.testexpr)
                outputs = _outputs(query)
                inner_column = outputs[0].column if len(outputs) == 1 else None
                if outer and names in ([], ["="]) and inner_column is not None:
                    # ``a IN (SELECT b …)`` is a semi-join on a = b: both sides may want an index
                    self.shape.predicates.append(Predicate(outer[0], outer[1], "join", scope=scope))
                    self.shape.predicates.append(Predicate(outputs[0].qualifier, inner_column, "join", scope=inner))


def _outputs(query: Any) -> list[Target]:
    if query.op is not None and query.op != SetOperation.SETOP_NONE:
        return []  # a set operation's columns come from several branches: not one base column each
    return [_output(res) for res in query.targetList or ()]


def _output(res: Any) -> Target:
    """One select-list entry: a plain column keeps its lineage; anything else (casts included) is an expression."""
    value = res.val
    if isinstance(value, ast.ColumnRef) and value.fields and isinstance(value.fields[-1], ast.A_Star):
        fields = value.fields
        qualifier = str(fields[-2].sval) if len(fields) >= 2 and isinstance(fields[-2], ast.String) else None
        return Target(None, qualifier, None, star=True)
    column = _column(value)
    name = str(res.name) if res.name else (column[1] if column else None)
    return Target(name, column[0], column[1]) if column else Target(name, None, None)


def _rename(outputs: list[Target], colnames: Any) -> list[Target]:
    """Apply a column alias list (``AS s(a, b)``); with ``*`` in the outputs the positions are unknown here."""
    if not colnames or any(t.star for t in outputs):
        return outputs
    names = [str(c.sval) for c in colnames]
    return [Target(names[i], t.qualifier, t.column) if i < len(names) else t for i, t in enumerate(outputs)]


def _pushable(query: Any) -> bool:
    """Does a filter on this subquery's output reach its tables? Not past LIMIT/OFFSET or a set operation
    (PostgreSQL pushes into UNION ALL branches, but one branch's index is not the whole answer), nor window
    functions (a filter changes their frames)."""
    if query.op is not None and query.op != SetOperation.SETOP_NONE:
        return False
    if query.limitCount is not None or query.limitOffset is not None:
        return False
    return not any(isinstance(n, ast.FuncCall) and n.over is not None for n in _walk(query.targetList))


def _placeholders(stmt: Any) -> set[int]:
    """Parameters of the top-level select list, except under a cast to a type that would refuse '0'."""
    found: set[int] = set()
    stack: list[tuple[Any, bool]] = [(getattr(stmt, "targetList", None), True)]
    while stack:
        node, ok = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend((n, ok) for n in node)
        elif isinstance(node, ast.ParamRef):
            if ok and node.number is not None:
                found.add(node.number)
        elif isinstance(node, ast.TypeCast):
            names = [str(n.sval) for n in node.typeName.names or ()] if node.typeName is not None else []
            array = bool(node.typeName is not None and node.typeName.arrayBounds)
            stack.append((node.arg, ok and bool(names) and names[-1] in ZERO_TYPES and not array))
        elif isinstance(node, ast.Node):
            stack.extend((getattr(node, name), ok) for name in node)
    return found


# Functions and operators PostgreSQL marks IMMUTABLE (an index expression must be): lower(email),
# data ->> 'key'. Anything else is left to the user: date(created_at) on a timestamptz is only STABLE.
IMMUTABLE_FUNCTIONS = frozenset({"lower", "upper", "btrim", "ltrim", "rtrim", "md5", "abs", "left", "right", "substr"})
IMMUTABLE_OPERATORS = frozenset({"->>", "->", "#>>", "#>"})
# to_tsvector is IMMUTABLE only with the configuration given: to_tsvector('english', body)
TEXT_SEARCH_FUNCTIONS = frozenset({"to_tsvector"})
# Containment, key existence, overlap and full-text match: a GIN index serves them, a B-tree does not.
GIN_OPERATORS = frozenset({"@>", "<@", "?", "?|", "?&", "&&", "@@"})


def _indexable_expression(
    node: Any, functions: frozenset[str] = IMMUTABLE_FUNCTIONS
) -> tuple[tuple[str | None, str], Any] | None:
    """``lower(email)``, ``data ->> 'k'``: an immutable expression over exactly one column and constants."""
    if isinstance(node, ast.FuncCall):
        name = [str(n.sval) for n in node.funcname or ()]
        if name[-1:] and name[-1] in functions and name[:-1] in ([], ["pg_catalog"]) and node.over is None:
            parts = list(node.args or ())
            if name[-1] in TEXT_SEARCH_FUNCTIONS and (len(parts) != 2 or _column(parts[0])):
                return None  # without its configuration to_tsvector is only STABLE
        else:
            return None
    elif isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_OP and node.name:
        if node.name[-1].sval not in IMMUTABLE_OPERATORS or node.lexpr is None:
            return None
        parts = [node.lexpr, node.rexpr]
    else:
        return None
    columns = [c for part in parts if (c := _column(part))]
    others = [part for part in parts if not _column(part)]
    if len(columns) != 1 or not all(isinstance(_unwrap(o), ast.A_Const) for o in others):
        return None
    return columns[0], node


def render_expression(expression: Any, column: str) -> str:
    """The expression as SQL for an index definition, its column unqualified and named as in the base table.

    Serialised by pglast from the parse tree, so identifiers are quoted and constants escaped the way PostgreSQL
    reads them back (``data ->> 'it''s'``); no text from the query is pasted."""
    from pglast.stream import RawStream

    copy = deepcopy(expression)
    for node in _walk(copy):
        if isinstance(node, ast.ColumnRef):
            node.fields = (ast.String(sval=column),)
    return str(RawStream()(copy))


def index_keys(definition: str) -> list[tuple[str, bool, bool]] | None:
    """The keys of an index from its ``pg_get_indexdef`` text: (column name or expression SQL, desc, expression),
    expressions rendered as :func:`render_expression` renders a query's, so the two compare equal."""
    from pglast.stream import RawStream

    try:
        stmt = _parse_one(definition)
    except UnsupportedQuery:
        return None
    if not isinstance(stmt, ast.IndexStmt):
        return None
    keys = []
    for elem in stmt.indexParams or ():
        desc = elem.ordering == SortByDir.SORTBY_DESC
        if elem.name:
            keys.append((str(elem.name), desc, False))
            continue
        columns = [n for n in _walk(elem.expr) if isinstance(n, ast.ColumnRef)]
        names = {_column(n) for n in columns}
        if len(names) == 1 and None not in names:
            keys.append((render_expression(elem.expr, next(iter(names))[1]), desc, True))  # type: ignore[index]
        else:
            keys.append((str(RawStream()(elem.expr)), desc, True))
    return keys


def index_including(definition: str) -> list[str]:
    """The INCLUDE columns of an index from its ``pg_get_indexdef`` text."""
    try:
        stmt = _parse_one(definition)
    except UnsupportedQuery:
        return []
    if not isinstance(stmt, ast.IndexStmt):
        return []
    return [str(e.name) for e in stmt.indexIncludingParams or () if e.name]


def render_constant(value: str) -> str:
    """A string constant as SQL (pglast's escaping), for a partial index's WHERE."""
    from pglast.stream import RawStream

    return str(RawStream()(ast.A_Const(val=ast.String(sval=value))))


def _constant(node: Any) -> str | None:
    node = _unwrap(node)
    if isinstance(node, ast.A_Const) and not node.isnull and node.val is not None:
        value = node.val
        if isinstance(value, ast.String):
            return str(value.sval)
        if isinstance(value, ast.Integer):
            return str(value.ival)
    return None


def _function_name(node: Any) -> str:
    """A function in FROM without an alias is named after the function (``generate_series``)."""
    for function in node.functions or ():
        call = function[0] if function else None
        if isinstance(call, ast.FuncCall) and call.funcname:
            return str(call.funcname[-1].sval)
    return ""


def _cte_references(stmt: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in _walk(stmt):
        if isinstance(node, ast.RangeVar) and node.schemaname is None:
            counts[str(node.relname)] = counts.get(str(node.relname), 0) + 1
    return counts


def _optional_filter(node: Any) -> Any | None:
    """``($2 IS NULL OR id > $2)``: the comparison that applies whenever the parameter is given."""
    args = list(node.args or ())
    if len(args) != 2:
        return None
    for test, other in (args, args[::-1]):
        if (
            isinstance(test, ast.NullTest)
            and test.nulltesttype == NullTestType.IS_NULL
            and isinstance(_unwrap(test.arg), ast.ParamRef)
        ):
            number = _unwrap(test.arg).number
            if number in _numbers(other):
                return other
    return None


def _sublinks(node: Any) -> Iterator[Any]:
    """SubLinks inside an expression, not descending into their subqueries (those are read with their scope)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (tuple, list)):
            stack.extend(current)
        elif isinstance(current, ast.SubLink):
            yield current
            stack.append(current.testexpr)
        elif isinstance(current, ast.Node):
            stack.extend(getattr(current, name) for name in current)


def _column(node: Any) -> tuple[str | None, str] | None:
    """(qualifier, column) for a plain column reference, None for anything else."""
    if isinstance(node, ast.TypeCast):
        return None  # a cast on the column: a plain index on it does not apply
    if not isinstance(node, ast.ColumnRef):
        return None
    fields = node.fields or ()
    names = [str(f.sval) for f in fields if isinstance(f, ast.String)]
    if len(names) != len(fields) or not names:
        return None  # t.* and the like
    return (names[-2] if len(names) >= 2 else None), names[-1]


def _unwrap(node: Any) -> Any:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node


def _is_value(node: Any) -> bool:
    """True when the expression does not depend on the row: constants, parameters, now(), casts of those."""
    if isinstance(node, (ast.A_Const, ast.ParamRef)):
        return True
    if isinstance(node, ast.TypeCast):
        return _is_value(node.arg)
    if isinstance(node, (ast.FuncCall, ast.A_Expr, ast.SQLValueFunction, ast.A_ArrayExpr)):
        return not any(isinstance(n, (ast.ColumnRef, ast.SubLink)) for n in _walk(node))
    return False


def _param(node: Any) -> int | None:
    node = _unwrap(node)
    return node.number if isinstance(node, ast.ParamRef) else None


def _direct(number: int | None) -> tuple[int, ...]:
    return () if number is None else (number,)


def _numbers(node: Any) -> tuple[int, ...]:
    return tuple(n.number for n in _walk(node) if isinstance(n, ast.ParamRef) and n.number is not None)


def _walk(node: Any) -> list[Any]:
    found: list[Any] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, tuple | list):
            stack.extend(current)
        elif isinstance(current, ast.Node):
            found.append(current)
            stack.extend(getattr(current, name) for name in current)
    return found
