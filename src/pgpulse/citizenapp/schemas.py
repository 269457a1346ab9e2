"""Request and response bodies (pydantic v2). Validation errors become 422s that name the field.

Timestamps are always written as UTC with microseconds (``2026-11-24T23:43:55.123456Z``) so that the body
built by PostgreSQL (``single`` strategy) and the one built by pydantic are the same, byte for byte in values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_serializer

Status = Literal["draft", "published", "archived"]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

PG_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'  # to_char() twin of iso_utc()


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[NonBlank, Field(max_length=100)]
    email: EmailStr


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(gt=0)
    title: Annotated[NonBlank, Field(max_length=200)]
    body: str = Field(default="", max_length=100_000)
    status: Status = "draft"


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    post_id: int = Field(gt=0)
    user_id: int = Field(gt=0)
    text: Annotated[NonBlank, Field(max_length=10_000)]


class Timestamped(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    created_at: datetime

    @field_serializer("created_at")
    def _utc(self, value: datetime) -> str:
        return iso_utc(value)


class UserOut(Timestamped):
    id: int
    name: str
    email: str


class PostOut(Timestamped):
    id: int
    user_id: int
    title: str
    status: Status


class CommentOut(Timestamped):
    id: int
    post_id: int
    user_id: int
    text: str


class UserRef(BaseModel):
    id: int
    name: str
    email: str


class PostWithComments(Timestamped):
    id: int
    title: str
    status: Status
    comments: list[str]


class UserPosts(BaseModel):
    user: UserRef
    posts: list[PostWithComments]
