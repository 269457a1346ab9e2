"""users.email unique regardless of case: a unique index on lower(email) replaces the plain unique constraint

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

``A@x.org`` after ``a@x.org`` used to create a second account for the same mailbox. The expression index
also serves ``WHERE lower(email) = lower($1)`` look-ups; the old constraint's index would be redundant next
to it, so it goes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ux_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.drop_constraint("users_email_key", "users", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint("users_email_key", "users", ["email"])
    op.drop_index("ux_users_email_lower", table_name="users")
