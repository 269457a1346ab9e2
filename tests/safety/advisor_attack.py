"""Shared pieces of the advisor attacks: a database whose pg_stats hold crafted values, and a watch on it.

Not a test module (no ``test_`` prefix): ``test_advisor_*.py`` import it by path.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from typer.testing import CliRunner

from pgpulse.cli import app

DROP = "COMMIT; BEGIN READ WRITE; DROP TABLE victim; COMMIT; "
# Each crafted value is the most common value of its own column of ``bait`` (half the rows), so the advisor
# picks it as the representative value for ``column = $n``.
CRAFTED = {
    "k": "'); " + DROP + "--",
    "c": "*/; " + DROP + "/*",
    "l": "x\n; " + DROP + "--",
    "e": "\\'); " + DROP + "--",
    "d": "$$); " + DROP + "$$",
    "u": "'); " + DROP + "-- ünïcødé ☃ \U0001d518 ' \" \\",
    "w": "'); " + DROP + "-- " + "A" * 900,  # under ANALYZE's 1 kB width limit, so it is kept in pg_stats
}
# Workload statements with the placeholder written where the old advisor substituted it textually too: in a
# string literal, an E'' string, a dollar-quoted string, a block comment and a line comment. ``$1`` is compared
# with no column (no representative value), which sent the old advisor down its PREPARE path.
QUERIES = [
    "SELECT * FROM bait WHERE note <> $1::text AND k = $2 AND note IN ('x $2 y')",
    "SELECT * FROM bait WHERE note <> $1::text AND c = $2 /* $2 */",
    "SELECT * FROM bait WHERE note <> $1::text AND l = $2 -- $2\n AND id > 0",
    "SELECT * FROM bait WHERE note <> $1::text AND e = $2 AND note <> E'\\\\ $2 \\''",
    "SELECT * FROM bait WHERE note <> $1::text AND d = $2 AND note <> $$ $2 $$",
    "SELECT * FROM bait WHERE u = $1 AND note <> 'x $1 y'",
    "SELECT * FROM bait WHERE w = $1 AND id > $2 AND note <> '$1'",
    "SELECT * FROM bait WHERE k = $1 AND note <> '$300000000'",
]


def schema(hypopg: bool) -> str:
    columns = ", ".join(f"{c} text NOT NULL" for c in CRAFTED)
    values = ", ".join(f"CASE WHEN g % 2 = 0 THEN {_sql_literal(v)} ELSE '{c}' || g END" for c, v in CRAFTED.items())
    return (
        ("CREATE EXTENSION IF NOT EXISTS hypopg;\n" if hypopg else "")
        + "CREATE TABLE victim (id int PRIMARY KEY, payload text NOT NULL);\n"
        + "INSERT INTO victim SELECT g, 'row ' || g FROM generate_series(1, 100) g;\n"
        + "CREATE SEQUENCE bait_seq;\n"
        + f"CREATE TABLE bait (id bigint PRIMARY KEY, {columns}, note text NOT NULL);\n"
        + f"INSERT INTO bait SELECT g, {values}, 'note ' || g FROM generate_series(1, 20000) g;\n"
        + "ANALYZE;\n"
    )


def _sql_literal(value: str) -> str:
    """For the fixture's own setup script only (the test writes the attack into the table)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Snapshot:
    relations: dict[str, tuple[int, str]]  # name -> (oid, relkind), every relation of the public schema
    rows: dict[str, int]
    writes: dict[str, tuple[int, int, int]]  # n_tup_ins, n_tup_upd, n_tup_del
    sequences: dict[str, int]
    foreign_locks: int  # locks held by other sessions in this database
    schemas: list[str]


async def snapshot(url: str) -> Snapshot:
    """The observable state of the database, after every other session of it has ended (so their statistics
    are flushed and their locks are gone unless still held)."""
    conn = await asyncpg.connect(url)
    try:
        await _wait_alone(conn)
        relations = {
            r["relname"]: (r["oid"], r["relkind"])
            for r in await conn.fetch(
                "SELECT c.relname, c.oid::int8 AS oid, c.relkind::text FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            )
        }
        tables = [name for name, (_, kind) in relations.items() if kind == "r"]
        rows = {t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables}
        writes = {
            r["relname"]: (r["n_tup_ins"], r["n_tup_upd"], r["n_tup_del"])
            for r in await conn.fetch("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
        }
        sequences = {
            r["sequencename"]: r["last_value"] or 0
            for r in await conn.fetch("SELECT sequencename, last_value FROM pg_sequences")
        }
        locks = int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE pid <> pg_backend_pid() AND (database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) OR locktype = 'advisory')"
            )
        )
        schemas = [r[0] for r in await conn.fetch("SELECT nspname FROM pg_namespace ORDER BY 1")]
        return Snapshot(relations, rows, writes, sequences, locks, schemas)
    finally:
        await conn.close()


async def _wait_alone(conn: asyncpg.Connection, timeout: float = 20.0) -> None:
    """Poll until no other backend is connected to this database (the advisor's session has ended)."""
    loop = conn._loop
    deadline = loop.time() + timeout
    while await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ):
        if loop.time() > deadline:
            raise AssertionError("another session stayed connected to the database")
        await conn.execute("SELECT pg_sleep(0.05)")
    await conn.execute("SELECT pg_stat_clear_snapshot()")


def run_advise(*args: str) -> tuple[int, str, str]:
    """``pgpulse advise`` in-process; (exit code, stdout, stderr). A traceback is a failure of the test."""
    result = CliRunner().invoke(app, ["advise", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def leaked(output: str) -> list[str]:
    """Crafted values (or a recognisable piece of them) that appear in ``output``."""
    pieces = [*CRAFTED.values(), "DROP TABLE victim", "ünïcødé", "A" * 50]
    return [p[:40] for p in pieces if p in output]


def args_for(queries: list[str]) -> list[str]:
    out: list[str] = []
    for q in queries:
        out += ["-q", q]
    return out
