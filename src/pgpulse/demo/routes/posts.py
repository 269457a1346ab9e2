"""Creating posts and comments: validation errors are 422s, unknown parents are 404s."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from pgpulse.demo.deps import SessionDep
from pgpulse.demo.models import Comment, Post, User
from pgpulse.demo.schemas import CommentCreate, CommentOut, PostCreate, PostOut, errors

router = APIRouter(tags=["posts"])


@router.post("/posts", status_code=status.HTTP_201_CREATED, response_model=PostOut, responses=errors(400, 404))
async def create_post(body: PostCreate, session: SessionDep) -> Post:
    if await session.get(User, body.user_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {body.user_id} not found")
    post = Post(user_id=body.user_id, title=body.title, body=body.body, status=body.status)
    session.add(post)
    await session.commit()
    await session.refresh(post)
    return post


@router.post("/comments", status_code=status.HTTP_201_CREATED, response_model=CommentOut, responses=errors(400, 404))
async def create_comment(body: CommentCreate, session: SessionDep) -> Comment:
    if await session.get(Post, body.post_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"post {body.post_id} not found")
    if await session.get(User, body.user_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {body.user_id} not found")
    comment = Comment(post_id=body.post_id, user_id=body.user_id, text=body.text)
    session.add(comment)
    await session.commit()
    await session.refresh(comment)
    return comment
