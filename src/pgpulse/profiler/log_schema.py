"""The profiler's structlog events, field by field: the one source the README's "Log events" table is made from
and the tests check every emitted JSON line against.

Each event is a structlog call on the ``pgpulse.profiler`` logger (``log.warning("n_plus_one", **fields)``);
the keys ``event``, ``level`` and ``timestamp`` come from the processors of the app's structlog configuration
(those of :func:`pgpulse.profiler.json_logging.json_logging` here), not from pgpulse. Statements are shapes
(``pgpulse.sql.normalize``: placeholders, no literal); a parameter value appears only in ``slow_query`` and only
with ``instrument(..., log_parameters=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMMON", "EVENTS", "LogField", "markdown_table"]

_TYPE_NAMES: dict[type, str] = {str: "string", int: "integer", float: "number", type(None): "null"}


@dataclass(frozen=True, slots=True)
class LogField:
    name: str
    types: tuple[type, ...]  # the JSON types its value may take (int for a float field: JSON has one number)
    meaning: str
    optional: bool = False  # present only under the condition its meaning states

    @property
    def type_name(self) -> str:
        return " or ".join(_TYPE_NAMES[t] for t in self.types if t is not int or float not in self.types)


_STR = (str,)
_STR_OR_NULL = (str, type(None))
_NUMBER = (float, int)

_ROUTE = LogField("route", _STR_OR_NULL, "route template (`/users/{user_id}/posts`); null outside a request")
_METHOD = LogField("method", _STR_OR_NULL, "HTTP method of the request; null outside a request")
_FINGERPRINT = LogField("fingerprint", _STR, "pglast fingerprint of the statement's shape (hex)")
_STATEMENT = LogField("statement", _STR, "the statement's shape: placeholders, no literal, long IN lists folded")
_SOURCE = LogField("source", _STR_OR_NULL, "`file:line in function()` of the application code; null when not located")

COMMON: tuple[LogField, ...] = (
    LogField("event", _STR, "the event's name (one of the events below)"),
    LogField("level", _STR, "`warning` or `error`"),
    LogField("timestamp", _STR, "ISO 8601, UTC"),
)
"""Keys every line has, added by the structlog processors (:func:`json_logging` or your own)."""

EVENTS: dict[str, tuple[LogField, ...]] = {
    "n_plus_one": (
        _ROUTE,
        _METHOD,
        _FINGERPRINT,
        LogField("count", (int,), "how many times the shape ran from that line in the request"),
        LogField("duration_ms", _NUMBER, "the repeated statements' total time, ms"),
        LogField("relationship", _STR_OR_NULL, "the lazy-loaded relationship (`Post.comments`); null for a loop"),
        LogField("loaded_via", _STR_OR_NULL, "the relationship that loaded the parent objects (`User.posts`)"),
        _SOURCE,
        LogField(
            "during_serialization",
            _STR_OR_NULL,
            "the route whose response serialization ran the loads (`list_items() with response_model=…`)",
        ),
        _STATEMENT,
        LogField("fix", _STR, "the change that removes the N+1 (a `selectinload` chain, or one query for the set)"),
    ),
    "unused_eager_load": (
        _ROUTE,
        _METHOD,
        LogField("option", _STR, "the eager-load option (`selectinload(Item.tags)`)"),
        LogField("relationship", _STR, "the first relationship of the option that nothing read"),
        _SOURCE,
        _STATEMENT,
        LogField("fix", _STR, "what to remove (or replace with `noload`)"),
    ),
    "slow_query": (
        _ROUTE,
        _METHOD,
        _FINGERPRINT,
        _STATEMENT,
        LogField("duration_ms", _NUMBER, "the statement's time, ms (≥ `slow_query_ms`)"),
        LogField("rows", (int, type(None)), "the driver's row count (-1 when it does not know)"),
        LogField("parameters", _STR, "`repr()` of the bound values; only with `log_parameters=True`", optional=True),
    ),
    "query_failed": (
        _ROUTE,
        _METHOD,
        LogField("error", _STR, "the driver's exception class (`QueryCanceledError`)"),
        _FINGERPRINT,
        _STATEMENT,
        LogField("duration_ms", _NUMBER, "time until the failure, ms"),
    ),
    "new_connection_per_request": (
        _ROUTE,
        _METHOD,
        LogField("pool", _STR, "the pool name given to `instrument(engine, pool_name=…)`"),
        LogField("pool_class", _STR, "the engine's pool class (`NullPool`, `AsyncAdaptedQueuePool`)"),
        LogField("reason", _STR, "`no_pool` (the pool reuses no connection) or `churn` (the pool keeps opening them)"),
        LogField("count", (int,), "new database connections the request opened on that engine"),
        LogField("connect_ms", _NUMBER, "time spent opening them, ms"),
        LogField("request_ms", _NUMBER, "the request's wall time, ms"),
        LogField("churn", (int, type(None)), "`churn`: how many of the engine's last 100 checkouts opened one"),
        LogField(
            "suppressed", (int,), "findings of this route, method and pool not logged since its last line (1/min)"
        ),
        LogField("fix", _STR, "the engine's pool settings that reuse connections (or PgBouncer), printed whole"),
    ),
    "record_truncated": (
        _ROUTE,
        _METHOD,
        LogField("kept", (int,), "statements the record kept for N+1 detection and the exporters (its first 10,000)"),
        LogField("total", (int,), "statements it ran, all counted in its metrics; logged once, when the record closes"),
    ),
    "on_record_hook_failed": (
        LogField("hook", _STR, "qualified name of the `on_record` hook that raised"),
        LogField("error", _STR, "the exception class it raised (the request is not affected)"),
    ),
}
"""Every event the profiler emits, with its fields in the order they are passed."""


def markdown_table() -> str:
    """The README's table: one row per field of each event."""
    rows = ["| event | field | type | meaning |", "| --- | --- | --- | --- |"]
    for event, fields in EVENTS.items():
        for i, field in enumerate(fields):
            name = f"`{event}`" if i == 0 else ""
            optional = " (optional)" if field.optional else ""
            rows.append(f"| {name} | `{field.name}` | {field.type_name}{optional} | {field.meaning} |")
    return "\n".join(rows)
