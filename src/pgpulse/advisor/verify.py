"""Prove a candidate index before showing it: the planner's own cost with and without it.

Two ways to get "with it" without touching the user's database:

* **HypoPG** (preferred): a hypothetical index exists only in this session's planner; nothing is built, no
  lock is taken, and it works in a read-only session.
* **Build and roll back** (``--allow-build``, disposable databases only): ``CREATE INDEX`` inside a
  transaction that is always rolled back. It takes a SHARE lock (writes to the table wait) and costs the
  build time, which is why it must be asked for; in return ``--measure`` can time the query with the index.

Queries with parameters (``$1``, or pg_stat_statements' normalized text) are costed with representative
values from ``pg_stats``: the most common value for equality (for a skewed column that is the hot key, the
case worth optimising), a value near the selective end of the histogram for ranges. Where a parameter has no
statistics, the generic plan PostgreSQL would cache for the statement is costed instead.

Safety: ``pg_stats`` values are written by the application's users, so they are data, never SQL text. The
workload statement is parsed first (exactly one statement of an allowed kind, its ``$n`` read from the parse
tree, not from the text), then EXPLAINed through the extended protocol with the values *bound*: PostgreSQL
infers each parameter's type and the value travels in text format, exactly as ``pg_stats`` shows it, through a
per-type text codec set for that one call (so the server's own input function converts it). ``EXPLAIN
(GENERIC_PLAN)`` is not used for the generic plan: through the extended protocol its parameters must be bound,
and bound NULLs are folded into the plan ("One-Time Filter: false"); ``PREPARE`` + ``EXPLAIN EXECUTE`` under
``plan_cache_mode = force_generic_plan`` gives the real generic plan on every version.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import asyncpg
from pglast import ast

from pgpulse.advisor.candidates import Candidate, Resolution
from pgpulse.advisor.catalog import ColumnStats, create_index_sql
from pgpulse.errors import UserError
from pgpulse.errors import one_line as _one_line
from pgpulse.sql import quote_qualified
from pgpulse.sql.guard import (
    UnsafeStatementError,
    execution_hazard,
    function_names,
    one_statement,
    operator_names,
    parameter_numbers,
    walk,
)

MEASURE_RUNS = 5
MAX_PARAMS = 10_000  # more $n than any real statement has; beyond, refuse before the server allocates for them
# What the advisor EXPLAINs (never executes unless --measure says so and execution_hazard() finds nothing).
EXPLAIN_KINDS: tuple[type[ast.Node], ...] = (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt, ast.InsertStmt)
LIMIT_VALUE, OFFSET_VALUE = "10", "0"

Value = str | tuple[str, ...]  # one value as pg_stats prints it, or the elements of an array (= ANY($n), IN)

ELEMENT_TYPE_SQL = """
SELECT e.typname, n.nspname
  FROM pg_type a JOIN pg_type e ON e.oid = a.typelem JOIN pg_namespace n ON n.oid = e.typnamespace
 WHERE a.oid = $1
"""
# Any overload of a named function (or an operator's function) that is VOLATILE, or a name that is not found:
# both mean "cannot prove it does not write", so the statement is not executed.
VOLATILE_FUNCTIONS_SQL = """
SELECT f.name
  FROM unnest($1::text[], $2::text[]) AS f(schema, name)
 WHERE NOT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE p.proname = f.name AND (f.schema = '' OR n.nspname = f.schema))
    OR EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE p.proname = f.name AND (f.schema = '' OR n.nspname = f.schema) AND p.provolatile = 'v')
"""
VOLATILE_OPERATORS_SQL = """
SELECT DISTINCT o.oprname
  FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_namespace n ON n.oid = o.oprnamespace
 WHERE o.oprname = ANY($1::text[]) AND p.provolatile = 'v'
"""
# Only plain tables are read by a measured statement: a view or a foreign table may call anything.
NOT_TABLES_SQL = """
SELECT r.name
  FROM unnest($1::text[]) AS r(name)
  LEFT JOIN pg_class c ON c.oid = to_regclass(r.name)
 WHERE c.relkind IS NULL OR c.relkind NOT IN ('r', 'p', 'm')
"""


# auto_explain loaded in the session (session_preload_libraries, shared_preload_libraries) and logging every
# plan: it cannot look up HypoPG's hypothetical indexes ("cache lookup failed for index"), so every costing
# with one fails. Turning it off for this session only needs the right to SET it (superuser, or GRANT SET).
AUTO_EXPLAIN_SQL = "SELECT coalesce(current_setting('auto_explain.log_min_duration', true), '-1') NOT IN ('-1', '')"


async def _quiet_auto_explain(conn: asyncpg.Connection, log: Callable[[str], None]) -> None:
    if not await conn.fetchval(AUTO_EXPLAIN_SQL):
        return
    try:
        await conn.fetch("SELECT set_config('auto_explain.log_min_duration', '-1', false)")
        log("auto_explain is active in this session: turned off for it (it cannot print hypothetical indexes)")
    except asyncpg.PostgresError as exc:
        log(f"auto_explain is active in this session and cannot be turned off ({_one_line(exc)})")


class VerifyError(UserError, RuntimeError):
    """Candidates cannot be verified on this database; the message says what to enable."""


@dataclass(frozen=True)
class Statement:
    """A workload statement ready to cost: its text (checked to be one statement of an allowed kind), its
    highest ``$n`` and a representative value per parameter. The values are bound by the driver, never
    written into ``sql``; ``hazard`` says why it must not be executed (``--measure``), None when the text
    alone shows no write."""

    sql: str
    params: int
    values: dict[int, Value] = field(default_factory=dict)
    hazard: str | None = None
    tree: Any = field(default=None, compare=False, repr=False)

    @property
    def unbound(self) -> list[int]:
        return [n for n in range(1, self.params + 1) if n not in self.values]

    @property
    def generic(self) -> bool:
        """A parameter has no representative value: cost the generic plan."""
        return bool(self.unbound)

    def without_values(self) -> Statement:
        return replace(self, values={})


def statement(
    sql: str, resolution: Resolution | None = None, limit_param: int | None = None, offset_param: int | None = None
) -> Statement:
    """Check ``sql`` and pick a representative value for each of its parameters.

    Raises :class:`UnsafeStatementError` (the reason is the verdict) for text that is not exactly one SELECT,
    UPDATE, DELETE or INSERT, or that has more parameters than a statement can bind."""
    tree = one_statement(sql, EXPLAIN_KINDS)
    numbers = parameter_numbers(tree)
    count = max(numbers, default=0)
    if count > MAX_PARAMS:
        raise UnsafeStatementError(f"${count}: more parameters than pgpulse binds ({MAX_PARAMS})")
    values: dict[int, Value] = {}
    if limit_param in numbers and limit_param is not None:
        values[limit_param] = LIMIT_VALUE
    if offset_param in numbers and offset_param is not None:
        values[offset_param] = OFFSET_VALUE
    for number, (stats, pred) in (resolution.params if resolution else {}).items():
        if number in numbers and number not in values:
            value = _representative(stats, pred.op, pred.kind)
            if value is not None:
                values[number] = value
    return Statement(sql, count, values, execution_hazard(tree), tree)


def _representative(stats: ColumnStats, op: str, kind: str) -> Value | None:
    if kind == "in":
        values = list(stats.mcv[:3]) or _quantiles(stats.histogram, (0.25, 0.5, 0.75))
        return tuple(values) if values else None
    if op in ("=", "IS NULL") or kind in ("eq", "join"):
        if stats.mcv:
            return stats.mcv[0]
        middle = _quantiles(stats.histogram, (0.5,))
        return middle[0] if middle else None
    # a range: keep it selective (10% of the rows) so the candidate is costed on a query worth indexing
    where = 0.9 if op in (">", ">=") else 0.1
    bound = _quantiles(stats.histogram, (where,))
    if bound:
        return bound[0]
    return stats.mcv[0] if stats.mcv else None


def _quantiles(histogram: Sequence[str], points: Sequence[float]) -> list[str]:
    if not histogram:
        return []
    return [histogram[min(len(histogram) - 1, int(p * (len(histogram) - 1)))] for p in points]


@dataclass(frozen=True)
class Costed:
    cost: float
    indexes: frozenset[str]  # index names the plan uses
    generic: bool = False  # costed as a generic plan (a parameter had no representative value)


@dataclass
class Trial:
    """One candidate (or set of candidates) tried against one query."""

    before: Costed
    after: Costed
    size_bytes: dict[Candidate, int] = field(default_factory=dict)
    used: set[Candidate] = field(default_factory=set)
    measured_before_ms: float | None = None
    measured_after_ms: float | None = None
    failed: dict[Candidate, str] = field(default_factory=dict)  # a candidate PostgreSQL refused, and why

    @property
    def factor(self) -> float:
        return self.before.cost / self.after.cost if self.after.cost > 0 else float("inf")


class CandidateRefused(Exception):
    """PostgreSQL (or HypoPG) cannot create this index: no B-tree operator class, too many columns…"""


_generic_names = itertools.count(1)
_INDETERMINATE = re.compile(r"parameter \$(\d+)")


class Method(StrEnum):
    """How a :class:`Verifier` costs an index; the value is the JSON report's ``method``."""

    hypopg = "hypopg"  # hypothetical indexes (HypoPG): nothing is built, nothing is locked
    build = "build"  # each index built in a transaction that is rolled back (takes a SHARE lock)
    applied = "applied"  # the indexes exist (after --apply): only timing the queries again


class Verifier:
    """Costs queries on one connection, with hypothetical or rolled-back indexes."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        method: Method,
        server_version: int,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.conn = conn
        self.method = method
        self.server_version = server_version
        self.log = log
        self.explains = 0  # EXPLAINs run, for the benchmark's count

    @classmethod
    async def create(
        cls, conn: asyncpg.Connection, allow_build: bool, log: Callable[[str], None] = lambda _: None
    ) -> Verifier:
        version = int(await conn.fetchval("SHOW server_version_num"))
        if await conn.fetchval("SELECT true FROM pg_extension WHERE extname = 'hypopg'"):
            await _quiet_auto_explain(conn, log)
            return cls(conn, Method.hypopg, version, log)
        if allow_build:
            return cls(conn, Method.build, version, log)
        available = await conn.fetchval("SELECT true FROM pg_available_extensions WHERE name = 'hypopg'")
        if available:
            raise VerifyError(
                "HypoPG is installed on the server but not enabled in this database: run CREATE EXTENSION hypopg "
                "(or pass --allow-build on a disposable copy)"
            )
        raise VerifyError(
            "cannot verify candidates: install HypoPG on the server (e.g. apt install postgresql-<version>-hypopg, "
            "then CREATE EXTENSION hypopg) or pass --allow-build on a disposable copy of the database"
        )

    # -- costing ----------------------------------------------------------------------------------------

    async def explain(self, stmt: Statement) -> Costed:
        """The planner's cost of ``stmt``; its generic plan when a parameter has no value, or when a value
        cannot be given to the parameter's type (``Costed.generic`` then says so)."""
        self.explains += 1
        generic = stmt.generic
        raw: Any = None
        if not generic:
            try:
                raw = await self._bound("EXPLAIN (FORMAT JSON) ", stmt)
            except (Unbindable, asyncpg.DataError, asyncpg.IndeterminateDatatypeError) as exc:
                # a data error quotes the value that did not fit (a literal of the query, a pg_stats value): its
                # kind only, as failure_reason shows it
                why = _one_line(exc) if isinstance(exc, Unbindable) else f"{type(exc).__name__}, values not shown"
                self.log(f"  representative values do not fit the parameters ({why}): generic plan")
                generic = True
        if generic:
            raw = await self._explain_generic(stmt)
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        return Costed(float(plan["Total Cost"]), frozenset(_index_names(plan)), generic)

    async def _bound(self, prefix: str, stmt: Statement) -> Any:
        """``prefix + stmt.sql`` through the extended protocol with ``stmt.values`` bound as parameters.

        The values are text as pg_stats prints them; for this one call each parameter's type (and an array
        parameter's element type) gets a text-format codec, so the server's own input function reads them.
        The codecs are reset afterwards: the connection's other queries keep asyncpg's usual types."""
        text = prefix + stmt.sql
        types = (await self.conn.prepare(text)).get_parameters()
        # Which type each value is read as (an array parameter: its element type), looked up before any codec
        # changes, so these catalog queries keep asyncpg's usual codecs.
        targets: list[tuple[str, str]] = []
        for param in types:
            if param.kind == "scalar":
                targets.append((param.name, param.schema))
            elif param.kind == "array":
                row = await self.conn.fetchrow(ELEMENT_TYPE_SQL, param.oid)
                targets.append((row["typname"], row["nspname"]))
            else:  # a composite or range parameter: no single pg_stats text to give it
                raise Unbindable(f"parameter of type {param.name}")
        overridden: list[tuple[str, str]] = []
        try:
            for target in dict.fromkeys(targets):
                try:
                    await self.conn.set_type_codec(target[0], schema=target[1], encoder=str, decoder=str, format="text")
                except (ValueError, asyncpg.InterfaceError) as exc:
                    raise Unbindable(f"parameter of type {target[0]}: {exc}") from None
                overridden.append(target)
            prepared = await self.conn.prepare(text)  # again: the codecs are chosen when a statement is prepared
            args = [_as(stmt.values[n], param.kind == "array") for n, param in enumerate(types, 1)]
            return await prepared.fetchval(*args)
        finally:
            for name, schema in overridden:
                await self.conn.reset_type_codec(name, schema=schema)

    async def _explain_generic(self, stmt: Statement) -> Any:
        """The plan PostgreSQL would cache for the statement whatever its parameters: PREPARE it and EXPLAIN
        EXECUTE under ``plan_cache_mode = force_generic_plan`` (the NULLs passed are then not looked at).

        The text sent is the checked statement itself (one statement, through the extended protocol, which
        refuses a second one anyway); the name and the NULLs are ours."""
        name = f"pgpulse_generic_{next(_generic_names)}"
        # A parameter whose type nothing determines (pg_stat_statements' $n where a literal was an argument of
        # json_build_object(VARIADIC "any")): declared text, the type its literal had; the others stay unknown
        # (inferred from their context). Only our own type names are written into the statement.
        types = ["unknown"] * stmt.params
        while True:
            declared = f"({', '.join(types)})" if "text" in types else ""
            try:
                await self.conn.fetch(f"PREPARE {name} {declared} AS {stmt.sql}")
                break
            except asyncpg.IndeterminateDatatypeError as exc:
                number = _INDETERMINATE.search(str(exc))
                if (
                    number is None
                    or not 1 <= int(number.group(1)) <= stmt.params
                    or types[int(number.group(1)) - 1] == "text"
                ):
                    raise
                types[int(number.group(1)) - 1] = "text"
        try:
            await self.conn.fetch("SET plan_cache_mode = force_generic_plan")
            nulls = ", ".join(["NULL"] * stmt.params)
            return await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({nulls})")
        finally:
            # In an aborted transaction these fail; the ROLLBACK that follows resets the setting, and the
            # prepared statement (named once) is gone with the session.
            with contextlib.suppress(asyncpg.PostgresError):
                await self.conn.fetch("RESET plan_cache_mode")
                await self.conn.fetch(f"DEALLOCATE {name}")

    # -- measuring --------------------------------------------------------------------------------------

    async def why_not_execute(self, stmt: Statement) -> str | None:
        """Why ``--measure`` must not run this statement for real, or None when it provably only reads:
        no write or row lock in the text, no VOLATILE function or operator (``nextval``, ``set_config``,
        ``pg_terminate_backend``, ``dblink_exec``, ``lo_unlink``, a user's VOLATILE function…), only tables
        read (a view may call anything), and a representative value for every parameter."""
        if stmt.hazard:
            return stmt.hazard
        if stmt.generic:
            return "a parameter has no representative value"
        functions = sorted(function_names(stmt.tree), key=lambda f: (f[0] or "", f[1]))
        if functions:
            rows = await self.conn.fetch(
                VOLATILE_FUNCTIONS_SQL, [s or "" for s, _ in functions], [n for _, n in functions]
            )
            if rows:
                names = ", ".join(sorted({r["name"] for r in rows}))
                return f"calls {names}, which is VOLATILE (may write) or unknown"
        operators = sorted({name for _, name in operator_names(stmt.tree)})
        if operators and (rows := await self.conn.fetch(VOLATILE_OPERATORS_SQL, operators)):
            return f"operator {', '.join(r['oprname'] for r in rows)} runs a VOLATILE function"
        relations = sorted({quote_qualified(n.schemaname, str(n.relname)) for n in _walk_ranges(stmt.tree)})
        if relations and (rows := await self.conn.fetch(NOT_TABLES_SQL, relations)):
            names = ", ".join(r["name"] for r in rows)
            return f"reads {names}, which is not a plain table (a view or foreign table may call anything)"
        return None

    async def measure(self, stmt: Statement, in_transaction: bool = False) -> float:
        """Median execution time (ms) of the query run for real, from EXPLAIN ANALYZE without per-node timing.

        The caller has checked :meth:`why_not_execute`. Each run is in a READ ONLY transaction that is always
        rolled back (inside the rolled-back build transaction: switched to READ ONLY first)."""
        times = []
        for _ in range(MEASURE_RUNS):
            if in_transaction:  # the build transaction, already switched to READ ONLY after its builds
                await self.conn.execute("SET TRANSACTION READ ONLY")
                raw = await self._bound("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ", stmt)
            else:
                await self.conn.execute("BEGIN READ ONLY")
                try:
                    raw = await self._bound("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ", stmt)
                finally:
                    await self.conn.execute("ROLLBACK")
            doc = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            times.append(float(doc["Execution Time"]))
        return statistics.median(times)

    # -- trials -----------------------------------------------------------------------------------------

    async def trial(self, stmt: Statement, candidates: Sequence[Candidate], before: Costed, measure: bool) -> Trial:
        """Cost ``stmt`` with all ``candidates`` present at once. A candidate PostgreSQL refuses raises
        :class:`CandidateRefused` (the caller makes it that candidate's verdict)."""
        if self.method is Method.hypopg:
            return await self._trial_hypopg(stmt, candidates, before)
        return await self._trial_build(stmt, candidates, before, measure)

    async def _trial_hypopg(self, stmt: Statement, candidates: Sequence[Candidate], before: Costed) -> Trial:
        names: dict[str, Candidate] = {}
        sizes: dict[Candidate, int] = {}
        try:
            for candidate in candidates:
                try:
                    row = await self.conn.fetchrow(
                        "SELECT indexrelid, indexname FROM hypopg_create_index($1)", create_index_sql(candidate)
                    )
                except asyncpg.PostgresError as exc:
                    raise CandidateRefused(_one_line(exc)) from None
                if row is None:
                    raise CandidateRefused("HypoPG did not create it")
                names[row["indexname"]] = candidate
                sizes[candidate] = int(await self.conn.fetchval("SELECT hypopg_relation_size($1)", row["indexrelid"]))
            try:
                after = await self.explain(stmt)
            except asyncpg.PostgresError as exc:
                hint = ""
                if await self.conn.fetchval(AUTO_EXPLAIN_SQL):
                    hint = " (auto_explain is active in this session and cannot print HypoPG's hypothetical indexes)"
                raise CandidateRefused(_one_line(exc) + hint) from None
        finally:
            await self.conn.fetch("SELECT hypopg_reset()")
        return Trial(before, after, sizes, {names[n] for n in after.indexes if n in names})

    async def _trial_build(
        self, stmt: Statement, candidates: Sequence[Candidate], before: Costed, measure: bool
    ) -> Trial:
        names: dict[str, Candidate] = {}
        sizes: dict[Candidate, int] = {}
        # Explicitly READ WRITE: the session default is read-only; this transaction is always rolled back, and
        # it is the only one pgpulse opens READ WRITE without --apply (its own CREATE INDEX, nothing else).
        await self.conn.execute("BEGIN READ WRITE")
        try:
            for i, candidate in enumerate(candidates):
                name = f"pgpulse_trial_{i}"
                sql = create_index_sql(candidate, name)
                self.log(f"building {sql} (rolled back)")
                try:
                    await self.conn.fetch(sql)
                except asyncpg.PostgresError as exc:
                    raise CandidateRefused(_one_line(exc)) from None
                size = await self.conn.fetchval(
                    "SELECT pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relname = $1 AND n.nspname = $2",
                    name,
                    candidate.table.schema,
                )
                names[name] = candidate
                sizes[candidate] = int(size or 0)
            # The indexes are built: from here the transaction only reads (a function that lies about its
            # volatility and is folded by the planner cannot write either).
            await self.conn.execute("SET TRANSACTION READ ONLY")
            after = await self.explain(stmt)
            trial = Trial(before, after, sizes, {names[n] for n in after.indexes if n in names})
            if measure and not stmt.generic:
                try:  # the last statement of the transaction: a failure here only loses the timing
                    trial.measured_after_ms = await self.measure(stmt, in_transaction=True)
                except (Unbindable, asyncpg.PostgresError) as exc:
                    self.log(f"  measuring with the index failed: {type(exc).__name__}")
        finally:
            await self.conn.execute("ROLLBACK")
        return trial


class Unbindable(Exception):
    """A parameter whose type takes no single text value (a composite or range): cost the generic plan."""


def _as(value: Value, array: bool) -> str | list[str]:
    if array:
        return list(value) if isinstance(value, tuple) else [value]
    return value[0] if isinstance(value, tuple) else value


def _walk_ranges(tree: Any) -> Iterable[ast.RangeVar]:
    cte_names = {str(n.ctename) for n in walk(tree) if isinstance(n, ast.CommonTableExpr)}
    return [n for n in walk(tree) if isinstance(n, ast.RangeVar) and (n.schemaname or n.relname not in cte_names)]


def _index_names(plan: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Index Name" in node:
            found.add(str(node["Index Name"]))
        stack.extend(node.get("Plans", []))
    return found
