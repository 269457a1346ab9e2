"""Request history: the connections a request opened when its engine connects per request (``NullPool``) or its
pool churns, counted per request so the Requests page sums them per route like the N+1s.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

A count (0 for every row stored before: their requests were not judged for it), next to ``nplusone`` and
``unused``; the findings themselves (headline, pool, fix) join the ``findings`` JSON, which needs no change.
Adding a column with a constant default rewrites no row (PostgreSQL 11+), so the upgrade is instant on a large
store.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TAG = "/* pgpulse:history */"


def upgrade() -> None:
    op.execute(f"{TAG} ALTER TABLE pgpulse_history.request ADD COLUMN connections int NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute(f"{TAG} ALTER TABLE pgpulse_history.request DROP COLUMN connections")
