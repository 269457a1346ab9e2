"""A small Flask app on a sync SQLAlchemy engine (psycopg), shaped as such apps are: a session per request, the
lazy walk most apps do by accident, the eager fix, a streamed response that queries while it is being sent,
and ``/metrics`` mounted beside it. The lines the profiler must name end with a ``# marker`` comment."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Flask, Response, abort, stream_with_context
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from pgpulse.demo.models import Post, User
from pgpulse.profiler.metrics import metrics_wsgi_app
from pgpulse.profiler.reporting import RecordHook
from pgpulse.profiler.wsgi import PgPulseWSGIMiddleware


def create_app(engine: Engine, on_record: RecordHook) -> Flask:
    app = Flask(__name__)

    @app.get("/users/<int:user_id>/posts/lazy")
    def lazy_posts(user_id: int) -> dict[str, object]:
        with Session(engine) as session:
            user = session.get(User, user_id)
            if user is None:
                abort(404)
            posts = [{"id": p.id, "comments": [c.text for c in p.comments]} for p in user.posts]  # lazy-comments
            return {"user": user.id, "posts": posts}

    @app.get("/users/<int:user_id>/posts/eager")
    def eager_posts(user_id: int) -> dict[str, object]:
        with Session(engine) as session:
            stmt = select(User).where(User.id == user_id).options(selectinload(User.posts).selectinload(Post.comments))
            user = session.scalars(stmt).one_or_none()
            if user is None:
                abort(404)
            return {
                "user": user.id,
                "posts": [{"id": p.id, "comments": [c.text for c in p.comments]} for p in user.posts],
            }

    @app.get("/users/<int:user_id>/posts/stream")
    def streamed_posts(user_id: int) -> Response:
        def lines() -> Iterator[str]:
            with Session(engine) as session:
                user = session.get(User, user_id)
                for post in user.posts if user is not None else []:
                    comments = [c.text for c in post.comments]  # stream-comments
                    yield json.dumps({"id": post.id, "comments": comments}) + "\n"

        return Response(stream_with_context(lines()), mimetype="application/x-ndjson")

    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        PgPulseWSGIMiddleware(app.wsgi_app, server_timing=True, on_record=on_record),
        {"/metrics": metrics_wsgi_app()},
    )
    return app
