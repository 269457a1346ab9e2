"""Views read through to their base tables: the planner expands a view into its definition, so the advisor does.

A query on ``posts_view WHERE view_id = 1`` is served by an index on the base table's column (``posts (id)``).
The definition comes from the catalog (``pg_get_viewdef``, as a bound value: the name is never spliced into SQL)
and is parsed like a subquery in ``FROM``; views on views are followed up to a fixed depth. Materialized views
are tables to the planner (they have their own indexes) and are left as they are.
"""

from __future__ import annotations

import asyncpg

from pgpulse.advisor.parse import MAX_VIEW_DEPTH, QueryShape, analyze
from pgpulse.sql import quote_qualified

VIEW_SQL = """
SELECT pg_get_viewdef(c.oid) AS definition
  FROM pg_class c
 WHERE c.oid = to_regclass($1) AND c.relkind = 'v'
"""


async def view_definition(conn: asyncpg.Connection, schema: str | None, name: str) -> str | None:
    """The defining SELECT of a view (None for a table, a materialized view or an unknown name)."""
    try:
        return await conn.fetchval(VIEW_SQL, quote_qualified(schema, name))  # type: ignore[no-any-return]
    except ValueError:  # a name PostgreSQL cannot hold (NUL): no such view
        return None


async def analyze_with_views(conn: asyncpg.Connection, sql: str) -> QueryShape:
    """:func:`analyze` with every view the query reads (directly or through other views) expanded."""
    definitions: dict[tuple[str | None, str], str] = {}
    checked: set[tuple[str | None, str]] = set()
    shape = analyze(sql)
    for _ in range(MAX_VIEW_DEPTH):
        new = [(t.schema, t.name) for t in shape.tables if (t.schema, t.name) not in checked]
        found = False
        for key in dict.fromkeys(new):
            checked.add(key)
            definition = await view_definition(conn, *key)
            if definition is not None:
                definitions[key] = definition
                found = True
        if not found:
            break
        shape = analyze(sql, definitions)
    return shape
