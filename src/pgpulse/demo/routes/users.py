"""Users and their posts: the endpoints the N+1 and composite-index lessons are measured on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pgpulse.demo.deps import SessionDep
from pgpulse.demo.loading import LazyTooLarge, Strategy, load_lazy, load_selectin, load_single
from pgpulse.demo.models import Post, User
from pgpulse.demo.schemas import PostOut, UserCreate, UserOut, UserPosts, errors

router = APIRouter(prefix="/users", tags=["users"])
UserId = Annotated[int, Path(gt=0, le=2**63 - 1, description="User id")]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserOut, responses=errors(400, 409))
async def create_user(body: UserCreate, session: SessionDep) -> User:
    user = User(name=body.name, email=body.email)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        # unique on lower(email) (migration 0002): A@x.org after a@x.org is the same address to a person
        raise HTTPException(status.HTTP_409_CONFLICT, f"a user with email {body.email!r} exists") from exc
    await session.refresh(user)
    return user


@router.get("/{user_id}", response_model=UserOut, responses=errors(404))
async def get_user(user_id: UserId, session: SessionDep) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")
    return user


@router.get("/{user_id}/posts", response_model=UserPosts, responses=errors(404))
async def user_posts(
    user_id: UserId,
    session: SessionDep,
    strategy: Annotated[Strategy, Query(description="How to load posts and comments")] = Strategy.selectin,
) -> UserPosts | Response:
    """The user, all their posts (newest first) and each post's comment texts, in three loading strategies.

    ``lazy`` answers 422 for a user with more than ``LAZY_MAX_POSTS`` posts (one query per post)."""
    if strategy is Strategy.single:
        body = await load_single(session, user_id)
        if body is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")
        return Response(content=body, media_type="application/json")
    loader = load_lazy if strategy is Strategy.lazy else load_selectin
    try:
        result = await loader(session, user_id)
    except LazyTooLarge as exc:
        detail = [{"loc": ["query", "strategy"], "msg": str(exc), "type": "value_error", "input": "lazy"}]
        raise HTTPException(422, detail) from None  # the number: Starlette renamed the constant
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")
    return result


@router.get("/{user_id}/posts/published", response_model=list[PostOut], responses=errors(404))
async def published_posts(
    user_id: UserId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[Post]:
    """The seed query: served by ``(user_id, status, created_at DESC)`` as one index range scan.

    404 for an unknown user, like ``/users/{id}/posts``; the existence check runs only when the list is
    empty, so the common case stays one query."""
    stmt = (
        select(Post)
        .where(Post.user_id == user_id, Post.status == "published")
        .order_by(Post.created_at.desc())
        .limit(limit)
    )
    posts = list((await session.scalars(stmt)).all())
    if not posts and await session.get(User, user_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")
    return posts
