"""``--apply``: create the advised indexes for real, without blocking writes, and never leave one INVALID.

``CREATE INDEX CONCURRENTLY`` lets writes continue, but when it fails part-way (a lock timeout while it waits
for older transactions, a deadlock, a cancel) PostgreSQL leaves an INVALID index behind that every write still
maintains and no query uses. So each build runs with a ``lock_timeout``, and afterwards the index is checked:
an INVALID leftover is dropped (concurrently as well) and the failure reported.

It changes only what it created:

* one ``--apply`` at a time per database (an advisory lock, as Dexter does), so two runs never race for a name;
* every name is unique after PostgreSQL's 63-byte truncation (a hash suffix when a name is cut) and not taken
  by any relation of the schema; a name another session takes between the check and the build makes the build
  fail ("already exists"), and that index is never touched (no ``IF NOT EXISTS``: it would report someone
  else's index as ours);
* the index is identified by OID, looked up by name once, right after its own build; a leftover is dropped
  only if that OID is still INVALID and still has the name we gave it, checked right before the drop;
* a partitioned table gets its index the way PostgreSQL allows without blocking writes: ``CREATE INDEX … ON
  ONLY parent`` (invalid, builds nothing), each partition ``CONCURRENTLY``, then ``ALTER INDEX … ATTACH
  PARTITION``; the parent index becomes valid when the last partition is attached;
* every identifier goes through :func:`pgpulse.sql.quote_ident` (``public."Order"`` stays ``"Order"``), and
  each statement is sent alone through the extended protocol (which refuses a second statement).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from pgpulse.advisor.advise import Recommendation
from pgpulse.advisor.candidates import Candidate
from pgpulse.advisor.catalog import create_index_sql, index_name
from pgpulse.errors import one_line as _one_line
from pgpulse.sql import quote_qualified

# The key of pgpulse's advisory lock ("pgpulse" + 1 as a bigint), the same for every --apply on any database.
ADVISORY_KEY = int.from_bytes(b"pgpulse\x01", "big", signed=True)
DROP_WAIT_FACTOR = 10  # how much longer than the build's lock_timeout we wait to remove its INVALID leftover

NAME_TAKEN_SQL = """
SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relname = $1 AND n.nspname = $2)
"""
INDEX_OID_SQL = """
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = $1 AND n.nspname = $2 AND c.relkind IN ('i', 'I') AND EXISTS
       (SELECT FROM pg_index i WHERE i.indexrelid = c.oid AND i.indrelid = $3)
"""
INDEX_STATE_SQL = """
SELECT c.relname, n.nspname, i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE i.indexrelid = $1
"""
PARTITIONS_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE h.inhparent = $1
 ORDER BY c.relname
"""
TABLE_OID_SQL = "SELECT to_regclass($1)::oid"
SET_LOCK_TIMEOUT_SQL = "SELECT set_config('lock_timeout', $1, false)"


@dataclass
class Applied:
    name: str
    ok: bool
    message: str
    seconds: float = 0.0
    recommendation: int = -1  # position in the list given to apply()
    oid: int | None = None  # the index created (on the parent for a partitioned table)


@dataclass
class _Table:
    oid: int
    schema: str
    name: str
    kind: str  # relkind


@dataclass
class _Run:
    conn: asyncpg.Connection
    lock_timeout_ms: int
    log: Callable[[str], None]
    reserved: set[tuple[str, str]] = field(default_factory=set)  # (schema, name) given out in this run


class ApplyError(Exception):
    """One index could not be created; ``str()`` is the report line (what is left, and how to remove it)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


async def apply(
    url: str,
    recommendations: list[Recommendation],
    lock_timeout_ms: int,
    log: Callable[[str], None] = lambda _: None,
) -> list[Applied]:
    conn = await asyncpg.connect(
        url,
        server_settings={
            "application_name": "pgpulse-advise-apply",
            "lock_timeout": str(lock_timeout_ms),
            "statement_timeout": "0",  # a large index legitimately takes minutes; lock waits are bounded above
        },
    )
    results: list[Applied] = []
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_KEY):
            return [
                Applied(r.name, False, "not created: another pgpulse --apply is running on this database", 0, i)
                for i, r in enumerate(recommendations)
            ]
        try:
            run = _Run(conn, lock_timeout_ms, log)
            for i, rec in enumerate(recommendations):
                result = await _apply_one(run, rec.candidate)
                result.recommendation = i
                results.append(result)
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", ADVISORY_KEY)
    finally:
        await conn.close()
    return results


async def _free_name(run: _Run, schema: str, table: str, candidate: Candidate) -> str:
    for attempt in range(1, 1000):
        name = index_name(table, candidate, "" if attempt == 1 else f"_{attempt}")
        if (schema, name) in run.reserved:
            continue
        if not await run.conn.fetchval(NAME_TAKEN_SQL, name, schema):
            run.reserved.add((schema, name))
            return name
    raise ApplyError(table, f"no free index name for {table} in schema {schema}")


async def _apply_one(run: _Run, candidate: Candidate) -> Applied:
    info = candidate.table
    oid = await run.conn.fetchval(TABLE_OID_SQL, info.fully_qualified)
    if oid is None:
        return Applied(
            index_name(info.name, candidate), False, f"not created: table {info.fully_qualified} no longer exists"
        )
    table = _Table(oid, info.schema, info.name, info.kind)
    began = time.monotonic()
    try:
        if table.kind == "p":
            name, index_oid = await _build_partitioned(run, candidate, table)
        else:
            name, index_oid = await _build(run, candidate, table)
    except ApplyError as exc:
        return Applied(exc.name, False, f"not created: {exc}", time.monotonic() - began)
    seconds = time.monotonic() - began
    return Applied(name, True, f"created in {seconds:.1f} s", seconds, oid=index_oid)


async def _build(run: _Run, candidate: Candidate, table: _Table) -> tuple[str, int]:
    """CREATE INDEX CONCURRENTLY on one plain table (or partition); the valid index's (name, OID)."""
    name = await _free_name(run, table.schema, table.name, candidate)
    sql = create_index_sql(candidate, name, concurrently=True, table=quote_qualified(table.schema, table.name))
    run.log(f"applying: {sql}")
    try:
        await run.conn.fetch(sql)
    except asyncpg.DuplicateTableError:
        # Another session took the name after we checked it: that relation is theirs, leave it alone.
        raise ApplyError(name, "another session created a relation of that name meanwhile; retry") from None
    except (asyncpg.PostgresError, OSError) as exc:
        reason = _one_line(exc)
        # The name was free when this run reserved it (under the advisory lock), and the build did not fail
        # with "already exists": an index of that name on this table is the INVALID leftover of our build.
        leftover = await run.conn.fetchval(INDEX_OID_SQL, name, table.schema, table.oid)
        raise ApplyError(name, await _drop_leftover(run, leftover, name, reason)) from None
    index_oid = await run.conn.fetchval(INDEX_OID_SQL, name, table.schema, table.oid)
    state = await run.conn.fetchrow(INDEX_STATE_SQL, index_oid) if index_oid is not None else None
    if state is None:
        raise ApplyError(name, "the index vanished right after its build (dropped by another session?)")
    if not state["indisvalid"]:
        raise ApplyError(name, await _drop_leftover(run, index_oid, name, "the index was left INVALID"))
    return name, int(index_oid)


async def _build_partitioned(run: _Run, candidate: Candidate, table: _Table) -> tuple[str, int]:
    """``ON ONLY`` the parent, each partition concurrently, then attach; on failure our pieces are removed."""
    name = await _free_name(run, table.schema, table.name, candidate)
    sql = create_index_sql(candidate, name, only=True, table=quote_qualified(table.schema, table.name))
    run.log(f"applying: {sql}")
    try:
        await run.conn.fetch(sql)
    except asyncpg.DuplicateTableError:
        raise ApplyError(name, "another session created a relation of that name meanwhile; retry") from None
    except asyncpg.PostgresError as exc:
        raise ApplyError(name, _one_line(exc)) from None
    parent_oid = await run.conn.fetchval(INDEX_OID_SQL, name, table.schema, table.oid)
    if parent_oid is None:
        raise ApplyError(name, "the index vanished right after its creation (dropped by another session?)")
    try:
        for part in await run.conn.fetch(PARTITIONS_SQL, table.oid):
            child = _Table(part["oid"], part["nspname"], part["relname"], part["relkind"])
            if child.kind == "p":
                child_name, _ = await _build_partitioned(run, candidate, child)
            elif child.kind == "r":
                child_name, _ = await _build(run, candidate, child)
            else:  # a foreign-table partition cannot have an index; PostgreSQL refuses the parent's one too
                raise ApplyError(name, f"partition {child.name} is a foreign table: no index possible on it")
            attach = (
                f"ALTER INDEX {quote_qualified(table.schema, name)} "
                f"ATTACH PARTITION {quote_qualified(child.schema, child_name)}"
            )
            run.log(f"applying: {attach}")
            await run.conn.fetch(attach)
        state = await run.conn.fetchrow(INDEX_STATE_SQL, parent_oid)
        if state is None or not state["indisvalid"]:
            raise ApplyError(name, "still INVALID after attaching every partition")
    except (ApplyError, asyncpg.PostgresError) as exc:
        reason = f"{exc.name}: {exc}" if isinstance(exc, ApplyError) else _one_line(exc)
        # Dropping the parent index drops the partitions' indexes attached to it (all ours).
        dropped = await _drop_ours(run, parent_oid, name, concurrently=False)
        tail = "the partial pieces were removed" if dropped is None else dropped
        raise ApplyError(name, f"{reason}; {tail}") from None
    return name, int(parent_oid)


async def _drop_leftover(run: _Run, oid: int | None, name: str, reason: str) -> str:
    """The report line after a failed build: the leftover (ours, by OID) dropped, or how to drop it."""
    if oid is None:
        return f"{reason}; nothing left behind, retry when the table is quieter"
    problem = await _drop_ours(run, oid, name, concurrently=True)
    if problem is None:
        return f"{reason}; nothing left behind, retry when the table is quieter"
    return f"{reason}; {problem}"


async def _drop_ours(run: _Run, oid: int, name: str, concurrently: bool) -> str | None:
    """Drop the index ``oid`` this run created if it is still INVALID and still named ``name`` (checked right
    before the drop); None when dropped or already gone, else what is left and the statement to remove it."""
    state = await run.conn.fetchrow(INDEX_STATE_SQL, oid)
    if state is None:
        return None
    if state["indisvalid"] or state["relname"] != name:
        return f"index OID {oid} changed meanwhile (valid now, or renamed): left alone"
    how = "CONCURRENTLY " if concurrently else ""
    drop = f"DROP INDEX {how}IF EXISTS {quote_qualified(state['nspname'], state['relname'])}"
    run.log(f"{name} was left INVALID: {drop}")
    # Dropping waits for the same transactions the build waited for: give them longer, but not forever.
    try:
        await run.conn.fetch(SET_LOCK_TIMEOUT_SQL, str(run.lock_timeout_ms * DROP_WAIT_FACTOR))
        await run.conn.fetch(drop)
    except asyncpg.PostgresError as exc:
        return (
            f"an INVALID index is left and could not be dropped yet ({_one_line(exc)}): run {drop}; "
            "when the table is quiet"
        )
    finally:
        await run.conn.fetch(SET_LOCK_TIMEOUT_SQL, str(run.lock_timeout_ms))
    return None
