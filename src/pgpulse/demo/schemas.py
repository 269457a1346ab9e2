"""Request and response bodies (pydantic v2). Validation errors become 422s that name the field.

Timestamps are always written as UTC with microseconds (``2026-11-24T23:43:55.123456Z``) so that the body
built by PostgreSQL (``single`` strategy) and the one built by pydantic are the same, byte for byte in values.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_serializer

Status = Literal["draft", "published", "archived"]
BIGINT_MAX = 2**63 - 1


# JSON may spell a lone UTF-16 surrogate ("\\ud800"); Python decodes it into a str that cannot be encoded as
# UTF-8, so asyncpg (and the JSON response echoing it) would fail with a 500 deep inside the request.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates: refuse them here, as a 422 naming the field."""
    if "\x00" in value:
        raise ValueError("NUL characters (\\u0000) cannot be stored")
    if _SURROGATE.search(value):
        raise ValueError("lone UTF-16 surrogates (\\ud800-\\udfff) are not text and cannot be stored")
    return value


Text = Annotated[str, AfterValidator(_storable)]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_storable)]
Id = Annotated[int, Field(gt=0, le=BIGINT_MAX)]  # ids are bigint: larger values cannot exist


class ErrorOut(BaseModel):
    """Every error the API answers besides validation (400, 404, 409, 503, 504)."""

    detail: str


def errors(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for a route: its own error codes plus the database ones every route can give."""
    described = {
        400: "The body is not JSON",
        404: "Not found",
        409: "Conflict",
        503: "Database unavailable or pool exhausted: retry after the Retry-After seconds",
        504: "Database statement timeout",
    }
    return {code: {"model": ErrorOut, "description": described[code]} for code in (*codes, 503, 504)}


PG_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'  # to_char() twin of iso_utc()


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[NonBlank, Field(max_length=100)]
    email: EmailStr


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Id
    title: Annotated[NonBlank, Field(max_length=200)]
    body: Annotated[Text, Field(max_length=100_000)] = ""
    status: Status = "draft"


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    post_id: Id
    user_id: Id
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
