"""Doctor: a read-only audit of a live PostgreSQL."""

# The fleet's defaults live here, not in doctor.fleet, so `pgpulse doctor --help` shows them without importing
# the audit itself (asyncpg, pglast, SQLAlchemy's URL parsing).
DEFAULT_CONCURRENCY = 8  # databases audited at once
DEFAULT_BUDGET_SECONDS = 30.0  # seconds each database may take
