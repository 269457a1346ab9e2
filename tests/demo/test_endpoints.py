"""Create endpoints, validation, the seed query and the health route, over a real database."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from pgpulse.demo.app import create_app
from pgpulse.demo.embedded import free_port


async def test_published_posts_is_the_seed_query_served_by_the_composite_index(citizen: Any) -> None:
    uid = citizen.seeded.hot_user_ids[0]
    response = await citizen.client.get(f"/users/{uid}/posts/published", params={"limit": 10})
    assert response.status_code == 200
    posts = response.json()
    assert len(posts) == 10
    assert {p["status"] for p in posts} == {"published"}
    assert {p["user_id"] for p in posts} == {uid}
    stamps = [p["created_at"] for p in posts]
    assert stamps == sorted(stamps, reverse=True)
    conn = await asyncpg.connect(citizen.url)
    try:
        await conn.execute("SET enable_seqscan = off")  # a 3,000-row table might otherwise seq scan
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT * FROM posts WHERE user_id = $1 AND status = 'published' "
                "ORDER BY created_at DESC LIMIT 10",
                uid,
            )
        )
    finally:
        await conn.close()
    assert "ix_posts_user_status_created" in plan
    assert "Sort" not in plan, "the index delivers the order: no sort node"


async def test_limit_is_validated(citizen: Any) -> None:
    for bad in ("0", "101", "ten"):
        response = await citizen.client.get("/users/1/posts/published", params={"limit": bad})
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_create_user_post_comment_round_trip(citizen: Any) -> None:
    client = citizen.client
    user = await client.post("/users", json={"name": "  Ada  ", "email": "ada@example.org"})
    assert user.status_code == 201, user.text
    assert user.json()["name"] == "Ada"
    uid = user.json()["id"]
    duplicate = await client.post("/users", json={"name": "Ada", "email": "ada@example.org"})
    assert duplicate.status_code == 409
    post = await client.post("/posts", json={"user_id": uid, "title": "Hello", "status": "published"})
    assert post.status_code == 201, post.text
    comment = await client.post("/comments", json={"post_id": post.json()["id"], "user_id": uid, "text": "Hi"})
    assert comment.status_code == 201, comment.text
    body = (await client.get(f"/users/{uid}/posts", params={"strategy": "single"})).json()
    assert body["posts"][0]["title"] == "Hello" and body["posts"][0]["comments"] == ["Hi"]
    assert (await client.get(f"/users/{uid}")).json()["email"] == "ada@example.org"


async def test_bad_input_is_422_naming_the_field(citizen: Any) -> None:
    client = citizen.client
    cases = [
        ("/users", {"name": "x", "email": "not-an-email"}, ["body", "email"]),
        ("/users", {"name": "   ", "email": "a@example.org"}, ["body", "name"]),
        ("/users", {"name": "x", "email": "b@example.org", "admin": True}, ["body", "admin"]),
        ("/posts", {"user_id": 1, "title": "t", "status": "deleted"}, ["body", "status"]),
        ("/posts", {"user_id": 0, "title": "t"}, ["body", "user_id"]),
        ("/posts", {"user_id": 1, "title": "x" * 201}, ["body", "title"]),
        ("/comments", {"post_id": 1, "user_id": 1, "text": ""}, ["body", "text"]),
    ]
    for path, payload, loc in cases:
        response = await client.post(path, json=payload)
        assert response.status_code == 422, (path, payload, response.text)
        assert loc in [e["loc"] for e in response.json()["detail"]], response.text
    assert (
        await client.post("/users", content=b"{not json", headers={"content-type": "application/json"})
    ).status_code == 422
    assert (await client.get("/users/0")).status_code == 422
    assert (await client.get(f"/users/{2**70}")).status_code == 422


async def test_unknown_parents_are_404(citizen: Any) -> None:
    client = citizen.client
    assert (await client.post("/posts", json={"user_id": 987654321, "title": "t"})).status_code == 404
    missing_post = await client.post("/comments", json={"post_id": 987654321, "user_id": 1, "text": "t"})
    assert missing_post.status_code == 404 and "post 987654321" in missing_post.json()["detail"]
    missing_user = await client.post("/comments", json={"post_id": 1, "user_id": 987654321, "text": "t"})
    assert missing_user.status_code == 404 and "user 987654321" in missing_user.json()["detail"]
    assert (await client.get("/users/987654321")).status_code == 404


async def test_health_reports_pool_and_ping(citizen: Any) -> None:
    response = await citizen.client.get("/health/db")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and 0 < body["ping_ms"] < 2_000
    pool = body["pool"]
    assert pool["size"] == 10 and pool["checked_out"] == 0 and pool["overflow"] == 0
    assert pool["checked_in"] >= 1


async def test_health_is_503_when_the_database_is_unreachable() -> None:
    app = create_app(f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nowhere")
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://x") as client,
    ):
        response = await client.get("/health/db")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert "secret" not in response.text
        api = await client.get("/users/1")
        assert api.status_code == 503 and api.headers["retry-after"] == "1"


async def test_duplicate_email_is_409_whatever_its_case(citizen: Any) -> None:
    client = citizen.client
    first = await client.post("/users", json={"name": "Grace", "email": "grace.hopper@example.org"})
    assert first.status_code == 201, first.text
    for variant in ("Grace.Hopper@example.org", "GRACE.HOPPER@EXAMPLE.ORG"):
        again = await client.post("/users", json={"name": "Grace", "email": variant})
        assert again.status_code == 409, (variant, again.text)
    conn = await asyncpg.connect(citizen.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users WHERE lower(email) = 'grace.hopper@example.org'") == 1
    finally:
        await conn.close()


async def test_published_posts_of_a_missing_user_is_404_like_its_posts(citizen: Any) -> None:
    client = citizen.client
    missing = await client.get("/users/987654321/posts/published")
    assert missing.status_code == 404 and missing.json() == {"detail": "user 987654321 not found"}
    fresh = await client.post("/users", json={"name": "No Posts", "email": "no.posts@example.org"})
    assert fresh.status_code == 201, fresh.text
    empty = await client.get(f"/users/{fresh.json()['id']}/posts/published")
    assert empty.status_code == 200 and empty.json() == []
