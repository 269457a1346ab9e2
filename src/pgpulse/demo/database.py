"""The demo's own database: created and marked by ``pgpulse demo``, and the only one it will ever write to.

``pgpulse demo`` migrates, truncates, re-seeds and plants problems (``DROP TABLE audit_events`` …). Run with a
``DATABASE_URL`` that points at someone's real database, that once destroyed their tables. The rule now:

* the database named in the URL (``pgpulse_demo`` when the URL names none) is used only if it carries the
  demo marker: the table ``pgpulse_demo_marker`` with its one row ``id = 1``, written by the demo itself;
* a database that does not exist yet is created on that server (from its ``postgres`` or ``template1``
  database) and marked at once, so the next run recognises it;
* an existing database without the marker is refused before anything is written, with one line that says
  how to proceed. ``--adopt-empty`` marks an existing database only when it holds no relations, functions,
  types or extensions of its own (the case of a managed server where the user may not ``CREATE DATABASE``
  but was handed an empty one for the demo).

The marker also records when the data were seeded, and which users the demo's hints point at, so demo data
persist between runs and are re-seeded only when asked (``--reseed``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy.engine import make_url

from pgpulse.db.databases import with_database
from pgpulse.db.urls import libpq_url
from pgpulse.errors import DemoDatabaseRefused
from pgpulse.sql.quote import quote_ident

DEFAULT_DEMO_DATABASE = "pgpulse_demo"
MARKER_TABLE = "public.pgpulse_demo_marker"
MARKER_ID = 1
MAINTENANCE_DATABASES = ("postgres", "template1")

HOW_TO_PROCEED = (
    "point DATABASE_URL at a database name that does not exist yet (the demo creates and marks it, "
    f"e.g. postgresql://user:password@host:5432/{DEFAULT_DEMO_DATABASE}), or at an empty database created for "
    "the demo and pass --adopt-empty"
)

MARKER_DDL = f"""
CREATE TABLE {MARKER_TABLE} (
    id integer PRIMARY KEY CHECK (id = {MARKER_ID}),
    created_at timestamptz NOT NULL DEFAULT now(),
    seeded_at timestamptz,
    hot_user_id bigint,
    showcase_user_id bigint
)
"""
MARKER_COMMENT = (
    f"COMMENT ON TABLE {MARKER_TABLE} IS "
    "'pgpulse demo database: pgpulse demo may re-seed every table here. Drop this table to stop it.'"
)
MARKER_ROW_SQL = f"SELECT seeded_at, hot_user_id, showcase_user_id FROM {MARKER_TABLE} WHERE id = $1"
MARKER_EXISTS_SQL = f"SELECT to_regclass('{MARKER_TABLE}') IS NOT NULL"

# Anything a user may have put in the database: relations, routines, types, extensions in user schemas.
# plpgsql lives in pg_catalog and every fresh database has it, so it does not count.
USER_OBJECTS_SQL = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
          AND n.nspname NOT LIKE 'pg\\_temp\\_%')
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
     + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS
              (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid))
     + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
"""


@dataclass(frozen=True)
class DemoDatabase:
    url: str  # libpq DSN (may hold a password: print it only through redact)
    name: str
    created: bool  # this run created the database
    seeded_at: datetime | None  # when the demo data were last loaded completely; None: load them now
    hot_user_id: int | None = None
    showcase_user_id: int | None = None


def demo_url(url: str) -> tuple[str, str]:
    """``url`` in libpq form, pointing at ``pgpulse_demo`` when it names no database; and that name."""
    dsn = libpq_url(url)
    name = make_url(dsn).database
    if not name:
        return with_database(dsn, DEFAULT_DEMO_DATABASE), DEFAULT_DEMO_DATABASE
    return dsn, name


async def is_marked(conn: asyncpg.Connection) -> bool:
    if not await conn.fetchval(MARKER_EXISTS_SQL):
        return False
    return bool(await conn.fetchval(f"SELECT count(*) FROM {MARKER_TABLE} WHERE id = $1", MARKER_ID))


async def require_marker(conn: asyncpg.Connection) -> None:
    """Raise unless ``conn`` is connected to a database the demo created and marked (the write guard)."""
    if not await is_marked(conn):
        name = await conn.fetchval("SELECT current_database()")
        raise DemoDatabaseRefused(
            f"database {name!r} has no pgpulse demo marker, so the demo leaves it untouched: {HOW_TO_PROCEED}"
        )


async def open_demo_database(url: str, *, adopt_empty: bool = False) -> DemoDatabase:
    """The marked demo database named by ``url``: created if missing, refused if it is someone else's.

    Raises ``DemoDatabaseRefused`` (a one-line message saying what to do) without writing anything when the
    database exists and is not the demo's.
    """
    dsn, name = demo_url(url)
    created = False
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        created = await _create(dsn, name)
        conn = await asyncpg.connect(dsn)
    try:
        if not await is_marked(conn):
            if not created:
                if not adopt_empty:
                    raise DemoDatabaseRefused(
                        f"database {name!r} exists and was not created by pgpulse demo (no demo marker), "
                        f"so the demo leaves it untouched: {HOW_TO_PROCEED}"
                    )
                objects = int(await conn.fetchval(USER_OBJECTS_SQL))
                if objects:
                    raise DemoDatabaseRefused(
                        f"--adopt-empty refused: database {name!r} is not empty ({objects} objects of its own), "
                        f"so the demo leaves it untouched; {HOW_TO_PROCEED.split(', or at')[0]}"
                    )
            await _mark(conn)
        row = await conn.fetchrow(MARKER_ROW_SQL, MARKER_ID)
    finally:
        await conn.close()
    assert row is not None
    return DemoDatabase(
        url=dsn,
        name=name,
        created=created,
        seeded_at=row["seeded_at"],
        hot_user_id=row["hot_user_id"],
        showcase_user_id=row["showcase_user_id"],
    )


async def record_seeded(url: str, hot_user_id: int | None, showcase_user_id: int | None) -> None:
    """Note in the marker that the demo data are complete (a run interrupted before this re-seeds next time)."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await require_marker(conn)
        await conn.execute(
            f"UPDATE {MARKER_TABLE} SET seeded_at = now(), hot_user_id = $2, showcase_user_id = $3 WHERE id = $1",
            MARKER_ID,
            hot_user_id,
            showcase_user_id,
        )
    finally:
        await conn.close()


async def forget_seeded(url: str) -> None:
    """Mark the data incomplete before a re-seed starts, so an interrupted re-seed is redone next run."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await require_marker(conn)
        await conn.execute(f"UPDATE {MARKER_TABLE} SET seeded_at = NULL WHERE id = $1", MARKER_ID)
    finally:
        await conn.close()


async def _mark(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute(MARKER_DDL)
        await conn.execute(MARKER_COMMENT)
        await conn.execute(f"INSERT INTO {MARKER_TABLE} (id) VALUES ($1)", MARKER_ID)


async def _create(dsn: str, name: str) -> bool:
    """CREATE DATABASE ``name`` from one of the server's maintenance databases; refusals become one line.

    False when another session created it first: then it is not ours, and the marker check decides."""
    last: Exception | None = None
    for maintenance in MAINTENANCE_DATABASES:
        try:
            conn = await asyncpg.connect(with_database(dsn, maintenance))
        except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
            last = exc
            continue
        try:
            await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
            return True
        except asyncpg.DuplicateDatabaseError:
            return False
        except asyncpg.InsufficientPrivilegeError as exc:
            raise DemoDatabaseRefused(
                f"database {name!r} does not exist and this role may not create it ({exc}): "
                f"create it (CREATE DATABASE {quote_ident(name)}) and run pgpulse demo --adopt-empty"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
    raise DemoDatabaseRefused(
        f"database {name!r} does not exist and no maintenance database ({', '.join(MAINTENANCE_DATABASES)}) "
        f"is reachable to create it from ({last}): create it and run pgpulse demo --adopt-empty"
    )
