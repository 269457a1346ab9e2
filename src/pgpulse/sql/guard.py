"""The one-statement guard: a statement from a workload, a log or a user is parsed by pglast before anything
is sent, and must be exactly one statement of a kind the caller allows.

Why parse instead of trusting the driver: the simple query protocol runs every statement in a string, so
``SELECT 1; COMMIT; BEGIN READ WRITE; DROP TABLE t`` would end a read-only transaction and open another. The
extended protocol refuses several statements too, but checking first lets the caller turn the refusal into a
verdict ("not a single SELECT") instead of an error from the server, and keeps DML away from ``EXPLAIN
ANALYZE``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pglast import ast, parser


class UnsafeStatementError(ValueError):
    """The text is not exactly one statement of an allowed kind; ``str()`` says what it is instead."""


READ_KINDS: tuple[type[ast.Node], ...] = (ast.SelectStmt,)
DML_KINDS: tuple[type[ast.Node], ...] = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)


def one_statement(sql: str, allowed: Iterable[type[ast.Node]] = READ_KINDS) -> ast.Node:
    """The parsed statement, or :class:`UnsafeStatementError` naming why it may not be sent."""
    kinds = tuple(allowed)
    try:
        parsed = parser.parse_sql(sql)
    except Exception as exc:
        raise UnsafeStatementError(f"does not parse: {str(exc).splitlines()[0]}") from None
    if len(parsed) != 1:
        raise UnsafeStatementError(f"{len(parsed)} statements where one is allowed")
    stmt = parsed[0].stmt
    if not isinstance(stmt, kinds):
        names = ", ".join(k.__name__.removesuffix("Stmt").upper() for k in kinds)
        raise UnsafeStatementError(f"a {type(stmt).__name__} statement where only {names} is allowed")
    return stmt
