"""The WSGI middleware under a real threaded WSGI server (waitress, loopback) in front of a Flask app on a sync
engine (psycopg) and the test PostgreSQL: the lazy walk is found with its relationship, line and fix; the eager
route is clean; a streamed response's queries land in its record, which closes when the stream does;
concurrent requests on the server's threads never mix records; ``/metrics`` counts exactly what was sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.profiler.apps import flask_app
from waitress import wasyncore
from waitress.server import create_server

from pgpulse.demo.seed import SHOWCASE_POSTS
from pgpulse.profiler import Record
from pgpulse.profiler.wsgi import path_template

LAZY, EAGER, STREAM = (f"/users/<int:user_id>/posts/{kind}" for kind in ("lazy", "eager", "stream"))
EAGER_FIX = "selectinload(User.posts).selectinload(Post.comments)"
WAIT = 30.0


def line_of(marker: str) -> int:
    with open(flask_app.__file__) as source:
        for number, line in enumerate(source.read().splitlines(), 1):
            if line.rstrip().endswith(f"# {marker}"):
                return number
    raise AssertionError(marker)


@dataclass
class Served:
    base: str
    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)

    def wait_for(self, n: int) -> list[Record]:
        """The first ``n`` closed records: each closes (and reaches the hook) just after its response went out."""
        deadline = time.monotonic() + WAIT
        while True:
            with self.lock:
                if len(self.records) >= n:
                    return list(self.records[:n])
            assert time.monotonic() < deadline, f"{len(self.records)} of {n} records closed"
            time.sleep(0.01)

    def take(self, n: int) -> list[Record]:
        records = self.wait_for(n)
        with self.lock:
            del self.records[:n]
        return records


@pytest.fixture(scope="module")
def served(db: Any) -> Iterator[Served]:
    holder = Served(base="")
    app = flask_app.create_app(db.sync_engine, holder.keep)
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    holder.base = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield holder
    server.task_dispatcher.shutdown()  # type: ignore[union-attr]
    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))  # type: ignore[union-attr]
    thread.join(timeout=10)
    assert not thread.is_alive()


def posts_per_user(url: str) -> dict[int, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT u.id, count(p.id) FROM users u LEFT JOIN posts p ON p.user_id = u.id GROUP BY u.id")
        return {user: n for user, n in rows}


def test_lazy_walk_is_found_with_relationship_line_and_fix(db: Any, served: Served) -> None:
    user = db.seeded.showcase_user_id
    response = httpx.get(f"{served.base}/users/{user}/posts/lazy")
    assert response.status_code == 200
    assert len(response.json()["posts"]) == SHOWCASE_POSTS
    (record,) = served.take(1)
    assert (record.route, record.method, record.path) == (LAZY, "GET", f"/users/{user}/posts/lazy")
    assert record.query_count == 2 + SHOWCASE_POSTS  # the user, their posts, then one query per post
    assert response.headers["server-timing"].endswith(f'desc="{2 + SHOWCASE_POSTS} queries"')
    (finding,) = record.findings
    assert (finding.relationship, finding.count, finding.loaded_via) == ("Post.comments", SHOWCASE_POSTS, "User.posts")
    assert finding.site is not None
    assert (finding.site.filename, finding.site.lineno) == (flask_app.__file__, line_of("lazy-comments"))
    assert EAGER_FIX in finding.fix


def test_eager_route_is_clean(db: Any, served: Served) -> None:
    response = httpx.get(f"{served.base}/users/{db.seeded.showcase_user_id}/posts/eager")
    assert response.status_code == 200
    (record,) = served.take(1)
    assert record.route == EAGER
    assert record.query_count == 3  # the user, then one selectin batch per relationship
    assert record.findings == [] and record.unused == []


def test_streamed_response_keeps_its_record_open_until_the_stream_closes(db: Any, served: Served) -> None:
    user = db.seeded.showcase_user_id
    with httpx.stream("GET", f"{served.base}/users/{user}/posts/stream") as response:
        # Headers go out before the generator has run a query; the record must not close with them.
        assert response.headers["server-timing"].endswith('desc="0 queries"')
        lines = list(response.iter_lines())
    assert len([line for line in lines if line]) == SHOWCASE_POSTS
    (record,) = served.take(1)
    assert record.route == STREAM
    assert record.query_count == 2 + SHOWCASE_POSTS
    (finding,) = record.findings
    assert finding.relationship == "Post.comments" and finding.count == SHOWCASE_POSTS
    assert finding.site is not None and finding.site.lineno == line_of("stream-comments")


def test_concurrent_requests_never_mix_records(db: Any, served: Served) -> None:
    posts = posts_per_user(db.url)
    users = sorted(u for u, n in posts.items() if 0 < n <= 60)[:12]
    assert len(users) >= 8
    paths = [f"/users/{u}/posts/lazy" for u in users] + [f"/users/{u}/posts/eager" for u in users]
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=served.base, limits=limits) as client, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda p: client.get(p).status_code, paths))
    assert statuses == [200] * len(paths)
    records = {r.path: r for r in served.take(len(paths))}
    assert sorted(records) == sorted(paths)
    for user in users:
        lazy, eager = records[f"/users/{user}/posts/lazy"], records[f"/users/{user}/posts/eager"]
        assert lazy.query_count == 2 + posts[user], user
        expected = [("Post.comments", posts[user])] if posts[user] >= 5 else []  # threshold 5 (tests' conftest)
        assert [(f.relationship, f.count) for f in lazy.findings] == expected, user
        assert (eager.query_count, eager.findings) == (3, []), user


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{base}/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("pgpulse_")
    }


def test_metrics_count_exactly_what_was_sent(db: Any, served: Served) -> None:
    user = db.seeded.showcase_user_id
    before = scrape(served.base)
    paths = [f"/users/{user}/posts/lazy"] * 3 + [f"/users/{user}/posts/eager"] * 2
    with ThreadPoolExecutor(max_workers=5) as pool:
        assert list(pool.map(lambda p: httpx.get(served.base + p).status_code, paths)) == [200] * 5
    served.take(5)  # every record reported (metrics first, then the hooks)
    after = scrape(served.base)

    def delta(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    lazy_queries = 3 * (2 + SHOWCASE_POSTS)
    assert delta("pgpulse_db_queries_per_request_count", route=LAZY, method="GET") == 3
    assert delta("pgpulse_db_queries_per_request_sum", route=LAZY, method="GET") == lazy_queries
    assert delta("pgpulse_db_query_duration_seconds_count", route=LAZY, method="GET") == lazy_queries
    assert delta("pgpulse_db_queries_per_request_count", route=EAGER, method="GET") == 2
    assert delta("pgpulse_db_query_duration_seconds_count", route=EAGER, method="GET") == 2 * 3
    findings = delta("pgpulse_nplusone_findings_total", route=LAZY, method="GET", relationship="Post.comments")
    assert findings == 3
    assert delta("pgpulse_nplusone_findings_total", route=EAGER, method="GET", relationship="Post.comments") == 0


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/users/42/posts", "/users/{id}/posts"),
        ("/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301/items/7", "/orders/{id}/items/{id}"),
        ("/blobs/5d41402abc4b2a76b9719d911017c592", "/blobs/{id}"),
        ("/about", "/about"),
        ("/", "/"),
    ],
)
def test_generic_wsgi_paths_fold_identifiers(path: str, label: str) -> None:
    assert path_template(path) == label


def test_generic_wsgi_labels_are_bounded_and_route_for_wins() -> None:
    """A plain WSGI app (no Flask): folded paths as labels, never more than MAX_PATH_LABELS of them; a given
    ``route_for`` decides instead, None meaning no route."""
    from wsgiref.util import setup_testing_defaults

    from pgpulse.profiler import UNMATCHED
    from pgpulse.profiler.wsgi import MAX_PATH_LABELS, PgPulseWSGIMiddleware

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    def call(app: PgPulseWSGIMiddleware, path: str) -> None:
        environ: dict[str, Any] = {"PATH_INFO": path}
        setup_testing_defaults(environ)
        body = app(environ, lambda status, headers, exc_info=None: lambda data: None)
        assert b"".join(body) == b"hi"
        body.close()  # type: ignore[attr-defined]

    records: list[Record] = []
    folded = PgPulseWSGIMiddleware(hello, on_record=records.append, log_findings=False)
    for i in range(MAX_PATH_LABELS + 5):
        call(folded, f"/page{i}/7")
    call(folded, "/page0/8")  # a label seen before stays itself after the cap
    labels = [r.route for r in records]
    assert labels[:2] == ["/page0/{id}", "/page1/{id}"]
    assert labels[MAX_PATH_LABELS - 1] == f"/page{MAX_PATH_LABELS - 1}/{{id}}"
    assert labels[MAX_PATH_LABELS : MAX_PATH_LABELS + 5] == [UNMATCHED] * 5
    assert labels[-1] == "/page0/{id}"
    assert all(r.closed for r in records)

    records.clear()
    routed = PgPulseWSGIMiddleware(
        hello, on_record=records.append, route_for=lambda e: "/hello" if e["PATH_INFO"] == "/hi" else None
    )
    call(routed, "/hi")
    call(routed, "/nope/1")
    assert [r.route for r in records] == ["/hello", UNMATCHED]
