"""Doctor: a read-only audit of a live PostgreSQL."""
