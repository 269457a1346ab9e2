"""SQL helpers every capability shares: statement shape, identifier quoting, redaction and the one-statement
guard. Text from a workload, a log, a catalog or a user is data: it reaches the server only as a bound value, or
(for a statement to EXPLAIN) after :func:`one_statement` has parsed it as exactly one statement of an allowed kind.
"""

from pgpulse.sql.guard import UnsafeStatementError, one_statement
from pgpulse.sql.quote import quote_ident, quote_qualified
from pgpulse.sql.redact import redact_sql, redact_text, redact_url
from pgpulse.sql.shape import fingerprint, normalize, parses, split_statements

__all__ = [
    "UnsafeStatementError",
    "fingerprint",
    "normalize",
    "one_statement",
    "parses",
    "quote_ident",
    "quote_qualified",
    "redact_sql",
    "redact_text",
    "redact_url",
    "split_statements",
]
