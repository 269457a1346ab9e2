"""The one-statement guard: a statement from a workload, a log or a user is parsed by pglast before anything
is sent, and must be exactly one statement of a kind the caller allows.

Why parse instead of trusting the driver: the simple query protocol runs every statement in a string, so
``SELECT 1; COMMIT; BEGIN READ WRITE; DROP TABLE t`` would end a read-only transaction and open another. The
extended protocol refuses several statements too, but checking first lets the caller turn the refusal into a
verdict ("not a single SELECT") instead of an error from the server, and keeps DML away from ``EXPLAIN
ANALYZE``.

A ``SelectStmt`` is not always a read: ``SELECT … INTO t`` creates a table, and ``WITH d AS (DELETE …
RETURNING *) SELECT …`` deletes. The guard judges a statement by everything it can do, so those count as a
CREATE TABLE and a DELETE. Row locks (``FOR UPDATE`` / ``FOR SHARE``) are legal in a read that is only
EXPLAINed; :func:`execution_hazard` names them (and every other write) for callers that would *execute* it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pglast import ast, parser

from pgpulse.errors import UserError, one_line


class UnsafeStatementError(UserError, ValueError):
    """The text is not exactly one statement of an allowed kind; ``str()`` says what it is instead."""


READ_KINDS: tuple[type[ast.Node], ...] = (ast.SelectStmt,)
DML_KINDS: tuple[type[ast.Node], ...] = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)
_WRITE_KINDS: tuple[type[ast.Node], ...] = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


def _name(kind: type[ast.Node]) -> str:
    return kind.__name__.removesuffix("Stmt").upper()


def one_statement(sql: str, allowed: Iterable[type[ast.Node]] = READ_KINDS) -> ast.Node:
    """The parsed statement, or :class:`UnsafeStatementError` naming why it may not be sent.

    Besides the statement's own kind, every data-modifying statement nested in it (a ``WITH`` query) must be
    of an allowed kind, and ``SELECT … INTO`` (a CREATE TABLE AS) is always refused."""
    kinds = tuple(allowed)
    try:
        parsed = parser.parse_sql(sql)
    except Exception as exc:
        raise UnsafeStatementError(f"does not parse: {one_line(exc)}") from None
    if len(parsed) != 1:
        raise UnsafeStatementError(f"{len(parsed)} statements where one is allowed")
    stmt = parsed[0].stmt
    names = ", ".join(_name(k) for k in kinds)
    if not isinstance(stmt, kinds):
        raise UnsafeStatementError(f"a {type(stmt).__name__} statement where only {names} is allowed")
    for node in walk(stmt):
        if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            raise UnsafeStatementError("SELECT … INTO creates a table")
        if node is not stmt and isinstance(node, _WRITE_KINDS) and not isinstance(node, kinds):
            raise UnsafeStatementError(f"a data-modifying WITH ({_name(type(node))}) where only {names} is allowed")
    return stmt


def execution_hazard(stmt: ast.Node) -> str | None:
    """Why running ``stmt`` for real could change something (write rows, take row locks), or None.

    Functions are not judged here: whether ``f()`` writes is in the catalog (``pg_proc.provolatile``), not in
    the text; see :func:`function_names` for the names to look up."""
    if isinstance(stmt, _WRITE_KINDS):
        return f"{_name(type(stmt))} writes rows"
    if not isinstance(stmt, ast.SelectStmt):
        return f"a {type(stmt).__name__} statement"
    for node in walk(stmt):
        if isinstance(node, _WRITE_KINDS):
            return f"a data-modifying WITH ({_name(type(node))}) writes rows"
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                return "SELECT … INTO creates a table"
            if node.lockingClause:
                return "FOR UPDATE/SHARE locks the rows it reads"
    return None


def parameter_numbers(stmt: ast.Node) -> set[int]:
    """The ``$n`` placeholders of the statement, from its parse tree (so ``'$1'`` in a literal or a comment is
    text, not a placeholder)."""
    return {node.number for node in walk(stmt) if isinstance(node, ast.ParamRef) and node.number}


def function_names(stmt: ast.Node) -> set[tuple[str | None, str]]:
    """``(schema or None, name)`` of every function the statement calls by name, operators included (an
    operator is a function call: ``a OPERATOR(s.+) b`` runs ``s.+``'s function)."""
    found: set[tuple[str | None, str]] = set()
    for node in walk(stmt):
        if isinstance(node, ast.FuncCall):
            found.add(_qualified(node.funcname))
    return found


def operator_names(stmt: ast.Node) -> set[tuple[str | None, str]]:
    """``(schema or None, symbol)`` of every operator written in the statement."""
    found: set[tuple[str | None, str]] = set()
    for node in walk(stmt):
        if isinstance(node, ast.A_Expr) and node.name:
            found.add(_qualified(node.name))
    return found


def _qualified(parts: Any) -> tuple[str | None, str]:
    names = [str(p.sval) for p in parts if isinstance(p, ast.String)]
    return (names[-2] if len(names) >= 2 else None), names[-1] if names else ""


def walk(node: Any) -> Iterator[Any]:
    """Every AST node under ``node`` (itself included), depth first, without recursion (deep trees are fine)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (tuple, list)):
            stack.extend(current)
        elif isinstance(current, ast.Node):
            yield current
            stack.extend(getattr(current, name) for name in current)
