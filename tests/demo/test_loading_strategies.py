"""GET /users/{id}/posts: three strategies, one body, and the query counts that tell them apart."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from pgpulse.demo.seed import SHOWCASE_COMMENTS, SHOWCASE_POSTS


@contextmanager
def count_queries(citizen: Any) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = citizen.app.state.engine.sync_engine

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def get_posts(citizen: Any, user_id: int, strategy: str) -> tuple[dict[str, object], int]:
    with count_queries(citizen) as statements:
        response = await citizen.client.get(f"/users/{user_id}/posts", params={"strategy": strategy})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json(), len(statements)


async def test_strategies_return_identical_bodies_for_the_showcase_user(citizen: Any) -> None:
    uid = citizen.seeded.showcase_user_id
    assert uid is not None
    bodies = {s: (await get_posts(citizen, uid, s))[0] for s in ("lazy", "selectin", "single")}
    assert bodies["lazy"] == bodies["selectin"] == bodies["single"]
    body = bodies["single"]
    posts = body["posts"]
    assert isinstance(posts, list) and len(posts) == SHOWCASE_POSTS
    assert all(len(p["comments"]) == SHOWCASE_COMMENTS for p in posts)
    stamps = [(p["created_at"], p["id"]) for p in posts]
    assert stamps == sorted(stamps, reverse=True), "posts come newest first"
    assert body["user"] == {"id": uid, "name": f"Citizen {uid}", "email": f"citizen{uid}@example.org"}


@pytest.mark.parametrize("pick", ["showcase", "cold", "empty"])
async def test_query_counts_lazy_is_2_plus_n_selectin_3_single_1(citizen: Any, pick: str) -> None:
    if pick == "showcase":
        uid = citizen.seeded.showcase_user_id
    else:
        # a cold user with some posts, or one with none
        async with citizen.app.state.engine.connect() as conn:
            from sqlalchemy import text

            sql = (
                "SELECT u.id FROM users u WHERE (SELECT count(*) FROM posts p WHERE p.user_id = u.id) "
                + ("BETWEEN 2 AND 20" if pick == "cold" else "= 0")
                + " ORDER BY u.id LIMIT 1"
            )
            uid = (await conn.execute(text(sql))).scalar_one()
    lazy, n_lazy = await get_posts(citizen, uid, "lazy")
    selectin, n_selectin = await get_posts(citizen, uid, "selectin")
    single, n_single = await get_posts(citizen, uid, "single")
    assert lazy == selectin == single
    n_posts = len(single["posts"])  # type: ignore[arg-type]
    # the user (with their post count, for the cap), their posts, then one comments query per post
    assert n_lazy == 2 + n_posts
    if pick == "showcase":
        assert n_posts == SHOWCASE_POSTS == 50 and n_lazy == 52  # the README's figure
    # selectin: user, posts, comments; SQLAlchemy skips the comments query when there are no posts.
    assert n_selectin == (3 if n_posts else 2)
    assert n_single == 1


async def test_selectin_chunks_the_in_list_by_500_for_a_hot_user(citizen: Any) -> None:
    uid = citizen.seeded.hot_user_ids[0]
    selectin, n_selectin = await get_posts(citizen, uid, "selectin")
    n_posts = len(selectin["posts"])  # type: ignore[arg-type]
    assert n_posts == 600  # SPEC: 40 % of 3,000 posts over 2 hot users
    assert n_selectin == 2 + math.ceil(n_posts / 500) == 4


async def test_lazy_refuses_a_user_above_the_cap_with_a_422_naming_the_strategy(citizen: Any) -> None:
    uid = citizen.seeded.hot_user_ids[0]  # 600 posts, over LAZY_MAX_POSTS = 500
    with count_queries(citizen) as statements:
        response = await citizen.client.get(f"/users/{uid}/posts", params={"strategy": "lazy"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "strategy"]
    assert "capped at 500 posts" in error["msg"] and "this user has 600" in error["msg"]
    assert len(statements) == 1, "refused after the one query that reads the user and the count"


async def test_unknown_user_is_404_in_every_strategy(citizen: Any) -> None:
    for strategy in ("lazy", "selectin", "single"):
        response = await citizen.client.get("/users/999999999/posts", params={"strategy": strategy})
        assert response.status_code == 404
        assert response.json() == {"detail": "user 999999999 not found"}


async def test_unknown_strategy_is_422_naming_the_choices(citizen: Any) -> None:
    response = await citizen.client.get("/users/1/posts", params={"strategy": "eager"})
    assert response.status_code == 422
    assert "lazy" in response.text and "selectin" in response.text and "single" in response.text
