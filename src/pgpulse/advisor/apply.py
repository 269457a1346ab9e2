"""``--apply``: create the advised indexes for real, without blocking writes, and never leave one INVALID.

``CREATE INDEX CONCURRENTLY`` lets writes continue, but when it fails part-way (a lock timeout while it waits
for older transactions, a deadlock, a cancel) PostgreSQL leaves an INVALID index behind that every write still
maintains and no query uses. So each build runs with a ``lock_timeout``, and afterwards the index is checked:
an INVALID leftover is dropped (concurrently as well) and the failure reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from pgpulse.advisor.advise import Recommendation

VALID_SQL = """
SELECT i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = $1 AND n.nspname = $2
"""
DROP_WAIT_FACTOR = 10  # how much longer than the build's lock_timeout we wait to remove its INVALID leftover


@dataclass
class Applied:
    name: str
    ok: bool
    message: str
    seconds: float = 0.0


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
        for rec in recommendations:
            results.append(await _apply_one(conn, rec, lock_timeout_ms, log))
    finally:
        await conn.close()
    return results


async def _apply_one(
    conn: asyncpg.Connection, rec: Recommendation, lock_timeout_ms: int, log: Callable[[str], None]
) -> Applied:
    name, schema = rec.candidate.name, rec.candidate.table.schema
    sql = rec.candidate.create_sql(concurrently=True).replace("CONCURRENTLY ", "CONCURRENTLY IF NOT EXISTS ", 1)
    log(f"applying: {sql}")
    loop_time = conn._loop.time
    began = loop_time()
    error: str | None = None
    try:
        await conn.execute(sql)
    except (asyncpg.PostgresError, OSError) as exc:
        error = str(exc).splitlines()[0] or type(exc).__name__
    seconds = loop_time() - began
    valid = await conn.fetchval(VALID_SQL, name, schema)
    if error is None and valid:
        return Applied(name, True, f"created in {seconds:.1f} s", seconds)
    reason = error or "the index was left INVALID"
    if valid is False:
        drop = f'DROP INDEX CONCURRENTLY IF EXISTS "{schema}"."{name}"'
        log(f"{name} was left INVALID: {drop}")
        # Dropping waits for the same transactions the build waited for: give them longer, but not forever.
        try:
            await conn.execute(f"SET lock_timeout = {lock_timeout_ms * DROP_WAIT_FACTOR}")
            await conn.execute(drop)
        except asyncpg.PostgresError as exc:
            return Applied(
                name,
                False,
                f"not created: {reason}; an INVALID index is left and could not be dropped yet "
                f"({str(exc).splitlines()[0]}): run {drop}; when the table is quiet",
            )
        finally:
            await conn.execute(f"SET lock_timeout = {lock_timeout_ms}")
    return Applied(name, False, f"not created: {reason}; nothing left behind, retry when the table is quieter")
