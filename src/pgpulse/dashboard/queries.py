"""The read-only SQL behind the pages, PgHero-style: one readable query per fact, plain rows out.

Every statement carries :data:`TAG` after its first keyword (pg_stat_statements drops a leading comment), so
the dashboard's own queries are left out of the Queries page.
Only catalog and statistics views are read; values reach the server as bound parameters, and the only
identifier spliced in (pg_stat_statements' schema) comes from ``pg_extension`` and is quoted with
:func:`pgpulse.sql.quote_ident`.
"""

from __future__ import annotations

import asyncpg

from pgpulse.sql import quote_ident

TAG = "/* pgpulse:dashboard */"
TOP_QUERIES = 50
TOP_TABLES = 200

HEADLINE_SQL = f"""SELECT {TAG}
  current_database() AS database,
       pg_database_size(current_database()) AS size_bytes,
       (SELECT sum(blks_hit)::float8 / nullif(sum(blks_hit) + sum(blks_read), 0)
          FROM pg_stat_database WHERE datname = current_database()) AS cache_hit_ratio,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       current_setting('max_connections')::int AS max_connections,
       current_setting('server_version') AS server_version"""

PGSS_SCHEMA_SQL = f"""SELECT {TAG}
  n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'"""

# Normalized text only: pg_stat_statements never stores the parameters' values.
TOP_QUERIES_SQL = """SELECT {tag}
  queryid, query, calls, total_exec_time, mean_exec_time, rows,
       100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0) AS share
FROM {schema}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND queryid IS NOT NULL AND query NOT LIKE '%pgpulse:%'
ORDER BY total_exec_time DESC LIMIT $1"""

ONE_QUERY_SQL = """SELECT {tag}
  queryid, query, sum(calls) AS calls, sum(total_exec_time) AS total_exec_time,
       sum(total_exec_time) / nullif(sum(calls), 0) AS mean_exec_time, sum(rows) AS rows
FROM {schema}.pg_stat_statements
WHERE queryid = $1 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
GROUP BY queryid, query LIMIT 1"""

UNUSED_INDEXES_SQL = f"""SELECT {TAG}
  s.schemaname, s.relname, s.indexrelname, pg_relation_size(s.indexrelid) AS size_bytes, s.idx_scan
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname"""

# An index is a duplicate when another valid index on the same table has the same leading columns (its key
# columns are a prefix of the other's), the same expressions, predicate and operator classes.
DUPLICATE_INDEXES_SQL = f"""SELECT {TAG}
  n.nspname AS schemaname, t.relname, a.relname AS indexname, b.relname AS covered_by,
       pg_relation_size(i.indexrelid) AS size_bytes
FROM pg_index i
JOIN pg_index j ON j.indrelid = i.indrelid AND j.indexrelid <> i.indexrelid AND j.indisvalid
JOIN pg_class a ON a.oid = i.indexrelid
JOIN pg_class b ON b.oid = j.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE i.indisvalid AND NOT i.indisprimary AND NOT (i.indisunique AND NOT j.indisunique)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND a.relam = b.relam
  AND (j.indkey::text || ' ') LIKE (i.indkey::text || ' %')
  AND (i.indnkeyatts < j.indnkeyatts OR (i.indnkeyatts = j.indnkeyatts AND i.indexrelid > j.indexrelid))
  AND j.indclass::text LIKE i.indclass::text || '%'
  AND coalesce(pg_get_expr(i.indexprs, i.indrelid), '') = coalesce(pg_get_expr(j.indexprs, j.indrelid), '')
  AND coalesce(pg_get_expr(i.indpred, i.indrelid), '') = coalesce(pg_get_expr(j.indpred, j.indrelid), '')
ORDER BY 1, 2, 3"""

INVALID_INDEXES_SQL = f"""SELECT {TAG}
  n.nspname AS schemaname, t.relname, c.relname AS indexname, pg_relation_size(c.oid) AS size_bytes
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid ORDER BY 1, 2, 3"""

# Bloat estimate: the pages the table has minus the pages its live rows would need at its fillfactor, from
# pg_stats' average widths (+ 24 bytes of tuple header and 4 of line pointer). A rough figure, like PgHero's.
TABLES_SQL = f"""WITH {TAG}
  widths AS (
  SELECT schemaname, tablename, sum(avg_width) AS width FROM pg_stats
  WHERE schemaname NOT IN ('pg_catalog', 'information_schema') GROUP BY 1, 2
)
SELECT s.relid, s.schemaname, s.relname, pg_total_relation_size(s.relid) AS total_bytes,
       s.n_live_tup, s.n_dead_tup, s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       c.relpages, c.reloptions,
       CASE WHEN w.width IS NULL OR c.relpages = 0 THEN NULL ELSE greatest(0,
         c.relpages - ceil(s.n_live_tup * (w.width + 28)
           / (current_setting('block_size')::float8 * coalesce((SELECT option_value::float8 FROM
               pg_options_to_table(c.reloptions) WHERE option_name = 'fillfactor'), 100) / 100)))
         * current_setting('block_size')::bigint END AS bloat_bytes
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
LEFT JOIN widths w ON w.schemaname = s.schemaname AND w.tablename = s.relname
ORDER BY total_bytes DESC, s.schemaname, s.relname LIMIT $1"""

TABLE_COUNT_SQL = f"SELECT {TAG} count(*) FROM pg_stat_user_tables"

AUTOVACUUM_SETTINGS_SQL = f"""SELECT {TAG}
  name, setting, unit FROM pg_settings WHERE name LIKE 'autovacuum%' ORDER BY name"""

SESSIONS_BY_STATE_SQL = f"""SELECT {TAG}
  coalesce(state, 'unknown') AS state, count(*) AS sessions
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC, 1"""

# Each blocked session with the sessions holding it up (pg_blocking_pids walks the lock graph for us).
LOCK_CHAINS_SQL = f"""SELECT {TAG}
  a.pid, a.usename, a.datname, a.state, a.wait_event_type, a.query,
       now() - a.query_start AS waiting, pg_blocking_pids(a.pid) AS blocked_by
FROM pg_stat_activity a WHERE cardinality(pg_blocking_pids(a.pid)) > 0 ORDER BY waiting DESC NULLS LAST"""

IDLE_IN_TRANSACTION_SQL = f"""SELECT {TAG}
  pid, usename, datname, application_name, now() - xact_start AS in_transaction,
       now() - state_change AS idle, query
FROM pg_stat_activity WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
ORDER BY xact_start NULLS LAST"""

SESSIONS_SQL = f"""SELECT {TAG}
  pid, usename, datname, application_name, state, wait_event_type, wait_event,
       now() - query_start AS running, query
FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
ORDER BY query_start NULLS LAST LIMIT 200"""


async def pgss_schema(conn: asyncpg.Connection) -> str | None:
    """Where pg_stat_statements is installed in this database, or None (then the Queries page says so)."""
    value = await conn.fetchval(PGSS_SCHEMA_SQL)
    return str(value) if value is not None else None


async def top_queries(conn: asyncpg.Connection, schema: str, limit: int = TOP_QUERIES) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(TOP_QUERIES_SQL.format(tag=TAG, schema=quote_ident(schema)), limit)
    return rows


async def one_query(conn: asyncpg.Connection, schema: str, queryid: int) -> asyncpg.Record | None:
    return await conn.fetchrow(ONE_QUERY_SQL.format(tag=TAG, schema=quote_ident(schema)), queryid)


CONNECTION_LIMITS_SQL = f"""SELECT {TAG}
  current_setting('max_connections')::int AS max_connections,
  current_setting('superuser_reserved_connections')::int AS reserved,
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use"""
