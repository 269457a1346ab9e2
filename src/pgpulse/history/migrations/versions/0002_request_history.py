"""Request history: summaries of the application's requests, kept when the dashboard is mounted with the profiler's
ring and a store.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

A summary is what the Requests page shows and nothing of the request itself: the method, the route template
(never the path or the query string), timings, counts and the findings (headline or option, the redacted
statement, the fix, the line) as JSON; no parameter value. ``(target_id, at)`` serves the page's window and the
retention by age; the identity key orders rows for the retention by count.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TAG = "/* pgpulse:history */"


def upgrade() -> None:
    op.execute(f"""{TAG}
CREATE TABLE pgpulse_history.request (
  request_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  target_id int NOT NULL REFERENCES pgpulse_history.target (target_id) ON DELETE CASCADE,
  at timestamptz NOT NULL,
  method text NOT NULL,
  route text NOT NULL,
  duration_ms float8 NOT NULL,
  db_ms float8 NOT NULL,
  query_count int NOT NULL,
  nplusone int NOT NULL,
  unused int NOT NULL,
  findings jsonb NOT NULL DEFAULT '[]'
)""")
    op.execute(f"{TAG} CREATE INDEX request_target_at ON pgpulse_history.request (target_id, at)")


def downgrade() -> None:
    op.execute(f"{TAG} DROP TABLE pgpulse_history.request")
