"""WSGI middleware for Flask and other sync apps (a sync SQLAlchemy engine, ``instrument(engine)`` as for async):
one record per request, the same findings, metrics, log events and ``on_record`` hooks as the ASGI middleware
(both report through :func:`pgpulse.profiler.reporting.report`).

Each request runs in a context of its own (``contextvars.copy_context()``): the app call, every step of the
response iterable and its ``close()`` run inside it. So a threaded server (waitress, gunicorn ``gthread``) that
reuses a thread for the next request never lets it see the previous record, and a streaming response that
queries while it is being sent (a generator walking lazy relationships) still has its queries counted. The
record closes when the server closes the response iterable (PEP 3333 requires it to), not when the app returns.

Route labels: Flask's matched rule (``/users/<int:user_id>/posts``) when the wrapped app is a Flask app or its
``wsgi_app``; otherwise ``route_for(environ)`` when given; otherwise the path with its numeric, UUID and long
hex segments folded to ``{id}``, and past :data:`MAX_PATH_LABELS` distinct labels every new one becomes
``UNMATCHED`` — a scanner probing ten thousand URLs must not create ten thousand metric series.
"""

from __future__ import annotations

import contextvars
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pgpulse.profiler.context import Record, close_record, current, open_record
from pgpulse.profiler.reporting import RecordHook, as_hooks, report
from pgpulse.profiler.routes import UNMATCHED
from pgpulse.types import Environ, ExcInfo, StartResponse, WSGIApp

__all__ = ["MAX_PATH_LABELS", "PgPulseWSGIMiddleware", "path_template"]

RouteFor = Callable[[Environ], str | None]

MAX_PATH_LABELS = 200
_ID_SEGMENT = re.compile(
    r"\d+|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}"
)


class _PathLabels:
    """The fallback labels: paths with identifiers folded, at most ``limit`` distinct ones per middleware."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, environ: Environ) -> str:
        template = path_template(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if template in self._seen:
            return template
        with self._lock:
            if len(self._seen) >= self.limit:
                return UNMATCHED
            self._seen.add(template)
            return template


def path_template(path: str) -> str:
    """``/users/42/posts`` → ``/users/{id}/posts``: numbers, UUIDs and long hex strings are identifiers."""
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(segment) else segment for segment in path.split("/")) or "/"


def _flask_app(app: Any) -> Any:
    """The Flask app behind ``app`` (the app itself or its bound ``wsgi_app``), or None; never imports Flask."""
    flask = sys.modules.get("flask")
    if flask is None:
        return None
    for candidate in (app, getattr(app, "__self__", None)):
        if isinstance(candidate, flask.Flask):
            return candidate
    return None


def _label_flask_rule(sender: Any, **extra: Any) -> None:
    """Flask's ``request_started`` signal: the URL rule is matched by then, and the request is the current one."""
    import flask

    record = current()
    if record is None:
        return
    rule = flask.request.url_rule
    root = flask.request.script_root
    record.route = root + rule.rule if rule is not None else UNMATCHED


class PgPulseWSGIMiddleware:
    """``app.wsgi_app = PgPulseWSGIMiddleware(app.wsgi_app)`` (Flask), or around any WSGI callable.

    ``threshold`` None: each engine's own, as given to ``instrument()``. ``server_timing`` adds
    ``Server-Timing: db;dur=…;desc="N queries"`` (the queries run before the response started). ``route_for``
    (generic WSGI apps): the route label of a request from its environ, None for no match; keep its answers few.
    ``on_record``: called with each closed record, see :mod:`pgpulse.profiler.reporting`."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        threshold: int | None = None,
        server_timing: bool = False,
        log_findings: bool = True,
        on_record: RecordHook | Sequence[RecordHook] | None = None,
        route_for: RouteFor | None = None,
    ) -> None:
        self.app = app
        self.threshold = threshold
        self.server_timing = server_timing
        self.log_findings = log_findings
        self.hooks = as_hooks(on_record)
        self.route_for = route_for
        flask_app = _flask_app(app) if route_for is None else None
        if flask_app is not None:
            import flask

            flask.request_started.connect(_label_flask_rule, flask_app, weak=False)
        elif route_for is None:
            self.route_for = _PathLabels(MAX_PATH_LABELS)
        self._flask = flask_app is not None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        context = contextvars.copy_context()
        return context.run(self._start, context, environ, start_response)

    def _start(self, context: contextvars.Context, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        record = Record(threshold=self.threshold, method=environ.get("REQUEST_METHOD"), path=path)
        if not self._flask and self.route_for is not None:
            record.route = self.route_for(environ) or UNMATCHED
        token = open_record(record)

        def start_with_timing(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
            if self.server_timing:
                timing = f'db;dur={record.db_ms:.1f};desc="{record.query_count} queries"'
                headers = [*headers, ("Server-Timing", timing)]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            body = self.app(environ, start_with_timing)
        except BaseException:
            self._finish(record, token)
            raise
        return _ClosingBody(body, context, lambda: self._finish(record, token))

    def _finish(self, record: Record, token: contextvars.Token[Record | None]) -> None:
        if record.route is None:
            record.route = UNMATCHED  # Flask never matched (an error before routing): one label, never the path
        close_record(record, token)
        report(record, log_findings=self.log_findings, hooks=self.hooks)


class _ClosingBody:
    """The app's response iterable, stepped and closed inside the request's context; closing it (the server
    does, once the last byte went out or the client left) closes the record."""

    def __init__(self, body: Iterable[bytes], context: contextvars.Context, finish: Callable[[], None]) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._context = context
        self._finish: Callable[[], None] | None = finish

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        finish, self._finish = self._finish, None
        if finish is None:
            return  # closed already
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._context.run(close)
        finally:
            self._context.run(finish)
