"""users, posts, comments with the indexes the API's queries need and per-table autovacuum settings

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Posts and comments take most writes: vacuum/analyze them at 5 % / 2 % churn instead of 20 % / 10 %, so a bulk
# load or a wave of edits does not leave the planner on stale statistics for hours. Set with ALTER TABLE rather
# than create_table(postgresql_with=...): SQLAlchemy accepts table storage options only from 2.1, and pgpulse
# supports 2.0 too. Same reloptions either way.
HIGH_CHURN = "autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("status IN ('draft', 'published', 'archived')", name="ck_posts_status"),
    )
    op.execute(f"ALTER TABLE posts SET ({HIGH_CHURN})")
    op.create_index("ix_posts_user_status_created", "posts", ["user_id", "status", sa.text("created_at DESC")])
    op.create_table(
        "comments",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("post_id", sa.BigInteger, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.execute(f"ALTER TABLE comments SET ({HIGH_CHURN})")
    op.create_index("ix_comments_post_id", "comments", ["post_id", "id"])


def downgrade() -> None:
    op.drop_table("comments")
    op.drop_table("posts")
    op.drop_table("users")
