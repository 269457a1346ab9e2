"""Three ways to load a user with their posts and each post's comments — the N+1 lesson in one file.

* ``lazy``: walk the relationships with ``awaitable_attrs``; 1 query for the user (with their post count), 1
  for their posts, then 1 per post for its comments: 2 + N for N posts (52 for 50). What most apps do by
  accident. Capped at ``LAZY_MAX_POSTS`` posts (a 422 names the strategy to use instead).
* ``selectin``: ``selectinload(User.posts).selectinload(Post.comments)``; always 3 queries.
* ``single``: PostgreSQL builds the JSON in one round trip; Python never materialises ORM objects and the
  text goes straight to the client (FastAPI's response serialisation is skipped too).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from pgpulse.demo.models import Post, User
from pgpulse.demo.schemas import PG_TIMESTAMP_FORMAT, PostWithComments, UserPosts, UserRef


class Strategy(StrEnum):
    lazy = "lazy"
    selectin = "selectin"
    single = "single"


def _to_body(user: User, posts: list[tuple[Post, list[str]]]) -> UserPosts:
    return UserPosts(
        user=UserRef(id=user.id, name=user.name, email=user.email),
        posts=[
            PostWithComments(id=p.id, title=p.title, status=p.status, created_at=p.created_at, comments=comments)
            for p, comments in posts
        ],
    )


LAZY_MAX_POSTS = 500  # 2 + 500 queries ≈ a few hundred ms; beyond that the lesson costs more than it teaches


class LazyTooLarge(Exception):
    """``strategy=lazy`` refused: one query per post would hold a pooled connection for too long."""

    def __init__(self, posts: int) -> None:
        super().__init__(
            f"strategy=lazy runs one query per post and is capped at {LAZY_MAX_POSTS:,} posts; this user has "
            f"{posts:,}: use strategy=selectin or strategy=single"
        )
        self.posts = posts


# The user and their post count in one round trip, so the cap costs no extra query.
_POST_COUNT = select(func.count(Post.id)).where(Post.user_id == User.id).correlate(User).scalar_subquery()


async def load_lazy(session: AsyncSession, user_id: int) -> UserPosts | None:
    """1 query for the user (and their post count), 1 for the posts, 1 per post for its comments: 2 + N.

    Raises ``LazyTooLarge`` above ``LAZY_MAX_POSTS`` posts, before loading any (a user with 100,000 posts
    once kept a connection busy for 33 s and the process at gigabytes of ORM objects)."""
    row = (await session.execute(select(User, _POST_COUNT).where(User.id == user_id))).one_or_none()
    if row is None:
        return None
    user, posts = row
    if posts > LAZY_MAX_POSTS:
        raise LazyTooLarge(posts)
    loaded: list[tuple[Post, list[str]]] = []
    for post in await user.awaitable_attrs.posts:
        comments = await post.awaitable_attrs.comments
        loaded.append((post, [c.text for c in comments]))
    return _to_body(user, loaded)


async def load_selectin(session: AsyncSession, user_id: int) -> UserPosts | None:
    stmt = select(User).where(User.id == user_id).options(selectinload(User.posts).selectinload(Post.comments))
    user = (await session.scalars(stmt)).one_or_none()
    if user is None:
        return None
    return _to_body(user, [(p, [c.text for c in p.comments]) for p in user.posts])


SINGLE_SQL = text(
    f"""
SELECT json_build_object(
    'user', json_build_object('id', u.id, 'name', u.name, 'email', u.email),
    'posts', COALESCE((
        SELECT json_agg(json_build_object(
                   'created_at', to_char(p.created_at AT TIME ZONE 'UTC', '{PG_TIMESTAMP_FORMAT}'),
                   'id', p.id,
                   'title', p.title,
                   'status', p.status,
                   'comments', COALESCE((SELECT json_agg(c.text ORDER BY c.id)
                                         FROM comments c WHERE c.post_id = p.id), '[]'::json))
               ORDER BY p.created_at DESC, p.id DESC)
        FROM posts p
        WHERE p.user_id = u.id), '[]'::json)
)::text
FROM users u
WHERE u.id = :user_id
"""
)


async def load_single(session: AsyncSession, user_id: int) -> str | None:
    """The response body as JSON text, or None for an unknown user."""
    result = await session.execute(SINGLE_SQL, {"user_id": user_id})
    return result.scalar_one_or_none()
