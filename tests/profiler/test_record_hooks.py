"""``on_record``: each request's closed record reaches every hook once, with its findings; a hook that raises
is logged and never changes the response."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from pgpulse.demo.app import create_app
from pgpulse.profiler import Record
from pgpulse.profiler.reporting import as_hooks
from pgpulse.settings import Settings


async def _get(url: str, path: str, hooks: Any, **params: str) -> httpx.Response:
    app = create_app(url, Settings(), on_record=hooks)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    async with app.router.lifespan_context(app), client:
        return await client.get(path, params=params)


async def test_every_hook_gets_the_closed_record_with_its_findings(db: Any) -> None:
    uid = db.seeded.showcase_user_id
    first: list[Record] = []
    second: list[Record] = []
    response = await _get(db.url, f"/users/{uid}/posts", [first.append, second.append], strategy="lazy")
    assert response.status_code == 200
    assert len(first) == 1 and second == first
    record = first[0]
    assert record.closed and record.ended is not None and record.elapsed_ms > 0
    assert record.route_name() == "/users/{user_id}/posts" and record.method == "GET"
    assert record.query_count == 52  # 1 user + 1 posts + 50 lazy comment loads (the README's formula)
    [finding] = record.findings
    assert finding.relationship == "Post.comments" and finding.count == 50


async def test_a_failing_hook_is_logged_and_the_response_is_untouched(db: Any) -> None:
    seen: list[Record] = []

    def broken(record: Record) -> None:
        raise RuntimeError("exporter is down")

    with capture_logs() as logs:
        response = await _get(db.url, f"/users/{db.seeded.showcase_user_id}", [broken, seen.append])
    assert response.status_code == 200 and response.json()["id"] == db.seeded.showcase_user_id
    assert len(seen) == 1  # the hooks after the broken one still run
    [event] = [e for e in logs if e["event"] == "on_record_hook_failed"]
    assert event["error"] == "RuntimeError" and "broken" in event["hook"]


def test_a_non_callable_hook_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="on_record takes callables"):
        as_hooks(["not a hook"])  # type: ignore[list-item]
