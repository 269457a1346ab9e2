"""The generic plan of a statement from pg_stat_statements, as a tree with its costly nodes marked.

EXPLAIN only, never ANALYZE: nothing is executed. The normalized text is checked by
:func:`pgpulse.sql.one_statement` (exactly one SELECT/INSERT/UPDATE/DELETE), then PREPAREd through the extended
protocol (which refuses a second statement anyway) and EXPLAINed as ``EXECUTE name(NULL, …)`` under
``plan_cache_mode = force_generic_plan``: the plan PostgreSQL would cache whatever the parameters, so the
NULLs are never looked at and no value of the workload is needed. All of it happens in one transaction that
is rolled back (``SET LOCAL`` goes with it) and the prepared statement is deallocated.

The plan still holds constants the statement never wrote: a view's ``WHERE``, an inlined SQL function's body, a
column default. Every detail shown goes through :func:`pgpulse.sql.redact.redact_plan_json`, as the logs' plans
do.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pglast import ast

from pgpulse.sql import UnsafeStatementError, one_statement
from pgpulse.sql.guard import parameter_numbers
from pgpulse.sql.redact import redact_plan_json

EXPLAIN_KINDS: tuple[type[ast.Node], ...] = (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt, ast.InsertStmt)
MAX_PARAMS = 10_000
COSTLY_SHARE = 0.25  # a node whose own cost is at least this share of the plan's is highlighted
DETAIL_KEYS = (
    "Relation Name",
    "Index Name",
    "Join Type",
    "Index Cond",
    "Hash Cond",
    "Merge Cond",
    "Filter",
    "Sort Key",
)

_names = itertools.count(1)


class ExplainError(Exception):
    """The statement cannot be explained; ``str()`` is one line saying why."""


@dataclass
class PlanNode:
    node_type: str
    total_cost: float
    self_cost: float
    rows: float
    details: list[tuple[str, str]]
    costly: bool = False
    children: list[PlanNode] = field(default_factory=list)


def _detail(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def build_tree(plan: dict[str, Any], root_cost: float | None = None) -> PlanNode:
    """A :class:`PlanNode` tree from one ``"Plan"`` object of EXPLAIN (FORMAT JSON)."""
    total = float(plan.get("Total Cost", 0.0))
    root = total if root_cost is None else root_cost
    children = [build_tree(p, root) for p in plan.get("Plans", [])]
    own = max(total - sum(c.total_cost for c in children), 0.0)
    details = [(k, _detail(redact_plan_json(plan[k], k))) for k in DETAIL_KEYS if k in plan]
    return PlanNode(
        # JSON says "ModifyTable" where the text format says "Update on t": show the readable one
        node_type=str(plan["Operation"] if plan.get("Node Type") == "ModifyTable" else plan.get("Node Type", "?")),
        total_cost=total,
        self_cost=own,
        rows=float(plan.get("Plan Rows", 0)),
        details=details,
        costly=root > 0 and own >= COSTLY_SHARE * root,
        children=children,
    )


async def generic_plan(conn: asyncpg.Connection, sql: str) -> PlanNode:
    """The generic plan of ``sql`` on ``conn`` (a read-only session); :class:`ExplainError` when it has none."""
    try:
        tree = one_statement(sql, EXPLAIN_KINDS)
    except UnsafeStatementError as exc:
        raise ExplainError(f"not explained: {exc}") from None
    count = max(parameter_numbers(tree), default=0)
    if count > MAX_PARAMS:
        raise ExplainError(f"not explained: ${count} is more parameters than pgpulse binds")
    name = f"pgpulse_dashboard_{next(_names)}"
    try:
        async with conn.transaction(readonly=True):
            await conn.fetch("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.fetch(f"PREPARE {name} AS {sql}")
            nulls = ", ".join(["NULL"] * count)
            args = f"({nulls})" if count else ""
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}{args}")
    except asyncpg.PostgresError as exc:
        first = str(exc).strip().splitlines()
        raise ExplainError(f"PostgreSQL could not plan it: {first[0] if first else type(exc).__name__}") from None
    finally:
        # A prepared statement outlives the transaction: drop it (it may not exist if PREPARE failed).
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.fetch(f"DEALLOCATE {name}")
    document = json.loads(raw) if isinstance(raw, str) else raw
    return build_tree(document[0]["Plan"])
