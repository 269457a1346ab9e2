"""CitizenApp's tables as typed SQLAlchemy 2.0 models; the schema itself is owned by Alembic migrations.

The models declare the same indexes as the migrations so that autogenerate stays empty and the tests can
compare them. The per-table autovacuum settings (5 % / 2 % churn on posts and comments) live in migration 0001
only: SQLAlchemy 2.0 has no table storage option (``postgresql_with`` on a Table is 2.1+), and autogenerate
does not compare storage parameters anyway. ``AsyncAttrs`` gives ``obj.awaitable_attrs.rel``: the only
async-safe way to lazy-load, which is exactly what the ``lazy`` strategy demonstrates (and what the profiler
flags).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

POST_STATUSES = ("draft", "published", "archived")


class Base(AsyncAttrs, DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    posts: Mapped[list[Post]] = relationship(
        back_populates="author", order_by="(Post.created_at.desc(), Post.id.desc())"
    )

    __table_args__ = (
        # One account per address as people read it: A@x.org and a@x.org are the same mailbox in practice
        # (migration 0002). Stored as typed; compared in lower case.
        Index("ux_users_email_lower", func.lower(email), unique=True),
    )


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    author: Mapped[User] = relationship(back_populates="posts")
    comments: Mapped[list[Comment]] = relationship(back_populates="post", order_by="Comment.id")

    __table_args__ = (
        CheckConstraint(f"status IN {POST_STATUSES!r}", name="ck_posts_status"),
        # Serves the seed query (user's published posts, newest first, LIMIT n) as a pure index range scan:
        # equality columns first, then the sort column with its direction.
        Index("ix_posts_user_status_created", "user_id", "status", created_at.desc()),
    )


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    post: Mapped[Post] = relationship(back_populates="comments")

    __table_args__ = (
        # Foreign-key side of the posts→comments join: without it every comment load is a seq scan.
        Index("ix_comments_post_id", "post_id", "id"),
    )
