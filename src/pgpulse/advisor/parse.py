"""What a query asks of its tables, read with pglast (PostgreSQL's own parser), for choosing index columns.

Only what an ordinary B-tree can serve is kept: columns compared with ``=`` / ``IN`` / ``= ANY`` / ``IS NULL``
to a value, range comparisons (``<``, ``>=``, ``BETWEEN``), columns equated across a join, and ORDER BY columns
with their direction. Predicates under OR or NOT, and expressions on columns (``lower(email) = $1``), cannot
be served by a plain column index and are left out. Parameters (``$1``) stay parameters: the verifier fills them
with representative values from ``pg_stats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType, SortByDir

RANGE_OPS = {"<", ">", "<=", ">="}
FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "="}


class UnsupportedQuery(ValueError):
    """The statement cannot be analysed (not SQL, not a single SELECT/UPDATE/DELETE); the message says why."""


@dataclass(frozen=True)
class TableRef:
    name: str
    schema: str | None
    alias: str  # the name the query uses for it (alias, else the table name)


@dataclass(frozen=True)
class Predicate:
    qualifier: str | None  # table alias/name as written; None when the column is unqualified
    column: str
    kind: str  # "eq" | "in" | "null" | "range" | "join"
    op: str = "="
    param: int | None = None  # $n compared with the column, for representative values


@dataclass(frozen=True)
class OrderItem:
    qualifier: str | None
    column: str
    desc: bool


@dataclass
class QueryShape:
    sql: str
    statement: str  # "select" | "update" | "delete"
    tables: list[TableRef] = field(default_factory=list)
    predicates: list[Predicate] = field(default_factory=list)
    order_by: list[OrderItem] = field(default_factory=list)
    has_limit: bool = False
    limit_param: int | None = None
    offset_param: int | None = None
    params: set[int] = field(default_factory=set)


def analyze(sql: str) -> QueryShape:
    try:
        statements = parse_sql(sql)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsupportedQuery(f"not valid PostgreSQL SQL: {message}") from exc
    if len(statements) != 1:
        raise UnsupportedQuery(f"expected one statement, got {len(statements)}")
    stmt: Any = statements[0].stmt
    shape: QueryShape
    if isinstance(stmt, ast.SelectStmt):
        if stmt.op is not None and getattr(stmt.op, "value", stmt.op) != 0:
            raise UnsupportedQuery("UNION/INTERSECT/EXCEPT: advise on each part separately")
        shape = QueryShape(sql=sql, statement="select")
        for item in stmt.fromClause or ():
            _from_item(item, shape)
        _where(stmt.whereClause, shape)
        for sort in stmt.sortClause or ():
            column = _column(sort.node)
            if column is None:
                break  # an expression in ORDER BY: the columns after it cannot be served in order either
            shape.order_by.append(OrderItem(column[0], column[1], sort.sortby_dir == SortByDir.SORTBY_DESC))
        if stmt.limitCount is not None:
            shape.has_limit = True
            if isinstance(stmt.limitCount, ast.ParamRef):
                shape.limit_param = stmt.limitCount.number
        if isinstance(stmt.limitOffset, ast.ParamRef):
            shape.offset_param = stmt.limitOffset.number
    elif isinstance(stmt, (ast.UpdateStmt, ast.DeleteStmt)):
        shape = QueryShape(sql=sql, statement="update" if isinstance(stmt, ast.UpdateStmt) else "delete")
        _from_item(stmt.relation, shape)
        _where(stmt.whereClause, shape)
    else:
        raise UnsupportedQuery(f"{type(stmt).__name__} is not a query an index can speed up")
    if not shape.tables:
        raise UnsupportedQuery("the query reads no table")
    shape.params = _params(stmt)
    return shape


def _from_item(node: Any, shape: QueryShape) -> None:
    if isinstance(node, ast.RangeVar):
        relname = str(node.relname)
        alias = str(node.alias.aliasname) if node.alias is not None else relname
        shape.tables.append(TableRef(relname, node.schemaname, alias))
    elif isinstance(node, ast.JoinExpr):
        _from_item(node.larg, shape)
        _from_item(node.rarg, shape)
        _where(node.quals, shape)
    # subqueries and functions in FROM: their own tables are advised when they run as their own statements


def _where(node: Any, shape: QueryShape) -> None:
    if node is None:
        return
    if isinstance(node, ast.BoolExpr):
        if node.boolop == BoolExprType.AND_EXPR:
            for arg in node.args or ():
                _where(arg, shape)
        return  # OR / NOT: no single index range serves them
    if isinstance(node, ast.NullTest):
        column = _column(node.arg)
        if column and node.nulltesttype == NullTestType.IS_NULL:
            shape.predicates.append(Predicate(column[0], column[1], "null", "IS NULL"))
        return
    if not isinstance(node, ast.A_Expr) or not node.name:
        return
    op = node.name[-1].sval
    left, right = _column(node.lexpr), _column(node.rexpr) if not isinstance(node.rexpr, tuple) else None
    if node.kind == A_Expr_Kind.AEXPR_OP:
        if op == "=" and left and right:
            shape.predicates.append(Predicate(left[0], left[1], "join"))
            shape.predicates.append(Predicate(right[0], right[1], "join"))
            return
        if op not in RANGE_OPS and op != "=":
            return
        if left and _is_value(node.rexpr):
            column, value = left, node.rexpr
        elif right and _is_value(node.lexpr):
            column, value, op = right, node.lexpr, FLIP[op]
        else:
            return
        kind = "eq" if op == "=" else "range"
        shape.predicates.append(Predicate(column[0], column[1], kind, op, _param(value)))
    elif node.kind in (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_OP_ANY) and op == "=" and left:
        values = node.rexpr if isinstance(node.rexpr, tuple) else (node.rexpr,)
        if all(_is_value(v) for v in values):
            param = _param(values[0]) if len(values) == 1 else None
            shape.predicates.append(Predicate(left[0], left[1], "in", "IN", param))
    elif node.kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM) and left:
        bounds = node.rexpr if isinstance(node.rexpr, tuple) and len(node.rexpr) == 2 else (None, None)
        shape.predicates.append(Predicate(left[0], left[1], "range", ">=", _param(bounds[0])))
        shape.predicates.append(Predicate(left[0], left[1], "range", "<=", _param(bounds[1])))


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
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node.number if isinstance(node, ast.ParamRef) else None


def _params(stmt: Any) -> set[int]:
    return {n.number for n in _walk(stmt) if isinstance(n, ast.ParamRef) and n.number is not None}


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
