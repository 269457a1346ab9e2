"""What the OpenTelemetry mode costs: CPU time per request and per query, profiler off / on / on + exporter /
on + exporter with statement spans / on + exporter + sqlcommenter traceparent, measured side by side.

Every variant runs the same synthetic request inside a recording SERVER span (the app is traced either way; what
is measured is what pgpulse adds): the profiler's real cursor listeners (from ``instrument()`` on an engine that
never connects) for each statement, the exporter at the response's end (on the still-open record, as the
middleware calls it), then the record's close and its Prometheus report. A database round trip is left out: its
20-100 µs of jitter would bury the few µs measured here (``pgpulse.bench.profiler_overhead`` does the same).

Two requests: ``selectin`` (3 statements, no finding) and ``lazy`` (2 + 50 statements, one N+1, so the stack
walks past the threshold and the span event are paid). CPU time (``time.process_time``) per round of requests,
variants interleaved round by round (A B C, then C B A) so a noisy neighbour hits them alike. Reported: the median
over rounds of each variant's cost above "off" (paired by round), with a distribution-free 95 % interval of that
median (order statistics), per request and per statement. An OpenTelemetry span started and ended on its own is
measured as the anchor (what opentelemetry-instrumentation-sqlalchemy pays per statement).

    python -m pgpulse.bench.otel_cost [--rounds 31] [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import create_async_engine

from pgpulse.bench.listener_stubs import StubContext, StubCursor, noop_after, noop_before
from pgpulse.profiler import instrument
from pgpulse.profiler.context import Record, close_record, open_record
from pgpulse.profiler.otel import InMemoryTelemetry, in_memory_telemetry
from pgpulse.profiler.reporting import report

USER = "SELECT users.id, users.name, users.email FROM users WHERE users.id = $1::BIGINT"
POSTS = "SELECT posts.id, posts.user_id, posts.title FROM posts WHERE posts.user_id = $1::BIGINT"
COMMENTS = "SELECT comments.id, comments.post_id, comments.text FROM comments WHERE comments.post_id = $1::BIGINT"
WORKLOADS = {
    "selectin": (USER, POSTS.replace("= $1::BIGINT", "IN ($1::BIGINT)"), COMMENTS.replace("= $1", "IN ($1")),
    "lazy": (USER, POSTS, *([COMMENTS] * 50)),
}
VARIANTS = ("off", "on", "on+otel", "on+otel+statement spans", "on+otel+traceparent")


Listener = Callable[..., Any]


@dataclass
class _Setup:
    before: Listener
    after: Listener
    profiler: bool
    telemetry: InMemoryTelemetry | None


def _listeners(traceparent: bool) -> tuple[Listener, Listener]:
    engine = create_async_engine("postgresql+asyncpg://bench@127.0.0.1:1/bench")  # never connects
    instrument(engine, slow_query_ms=1e9, sqlcommenter=traceparent, sqlcommenter_traceparent=traceparent)
    [before] = list(engine.sync_engine.dispatch.before_cursor_execute)
    [after] = list(engine.sync_engine.dispatch.after_cursor_execute)
    return before, after


def _setups() -> dict[str, _Setup]:
    plain = _listeners(traceparent=False)
    tagged = _listeners(traceparent=True)
    return {
        "off": _Setup(noop_before, noop_after, False, None),
        "on": _Setup(*plain, True, None),
        "on+otel": _Setup(*plain, True, in_memory_telemetry()),
        "on+otel+statement spans": _Setup(*plain, True, in_memory_telemetry(statement_spans=True)),
        "on+otel+traceparent": _Setup(*tagged, True, in_memory_telemetry()),
    }


def _requests(setup: _Setup, server: InMemoryTelemetry, statements: tuple[str, ...], count: int) -> float:
    """CPU seconds for ``count`` requests of ``statements`` each under ``setup``."""
    before, after, telemetry = setup.before, setup.after, setup.telemetry
    contexts = [StubContext(s) for s in statements]
    cursor, params = StubCursor(), (1,)
    began = time.process_time()
    for _ in range(count):
        with server.server_span():
            record = Record() if setup.profiler else None
            token = open_record(record) if record is not None else None
            for ctx in contexts:
                statement, parameters = before(None, cursor, ctx.statement, params, ctx, False)
                after(None, cursor, statement, parameters, ctx, False)
            if telemetry is not None and record is not None:
                telemetry.exporter(record)
            if record is not None:
                close_record(record, token)
                report(record, log_findings=False)
    spent = time.process_time() - began
    for kept in (server, telemetry):
        if kept is not None:
            kept.spans.clear()  # bounded memory; not timed
    return spent


def _span_anchor_us(server: InMemoryTelemetry, count: int) -> float:
    """µs for one bare span start + end with the same SDK setup (the per-statement price of a tracing library)."""
    tracer = server.tracer_provider.get_tracer("anchor")
    began = time.process_time()
    for _ in range(count):
        tracer.start_span("SELECT", kind=SpanKind.CLIENT).end()
    spent = time.process_time() - began
    server.spans.clear()
    return spent / count * 1e6


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the distribution-free interval of the median, [x(j), x(n-j+1)] with the largest j
    such that P(Binomial(n, 1/2) <= j - 1) <= (1 - confidence) / 2 (the whole range when n is too small)."""
    ordered = sorted(values)
    n = len(ordered)
    tail = (1.0 - confidence) / 2.0
    j, below = 0, 0.0  # below = P(B <= j - 1)
    while below + math.comb(n, j) / 2.0**n <= tail:
        below += math.comb(n, j) / 2.0**n
        j += 1
    if j == 0:
        return statistics.median(ordered), ordered[0], ordered[-1]
    return statistics.median(ordered), ordered[j - 1], ordered[n - j]


def measure(rounds: int, per_round: dict[str, int]) -> dict[str, Any]:
    setups = _setups()
    server = in_memory_telemetry()  # opens the SERVER span of every variant (the app's own tracing)
    results: dict[str, dict[str, list[float]]] = {w: {v: [] for v in VARIANTS} for w in WORKLOADS}
    for workload, statements in WORKLOADS.items():  # warm-up: caches, code paths
        for variant in VARIANTS:
            _requests(setups[variant], server, statements, max(1, per_round[workload] // 4))
    for i in range(rounds):
        order = VARIANTS if i % 2 == 0 else tuple(reversed(VARIANTS))
        for workload, statements in WORKLOADS.items():
            for variant in order:
                count = per_round[workload]
                results[workload][variant].append(_requests(setups[variant], server, statements, count) / count)
    summary: dict[str, Any] = {"rounds": rounds, "requests_per_round": per_round, "workloads": {}}
    for workload, statements in WORKLOADS.items():
        off = results[workload]["off"]
        rows = {}
        for variant in VARIANTS[1:]:
            added = [(v - o) * 1e6 for v, o in zip(results[workload][variant], off, strict=True)]
            med, low, high = median_interval(added)
            n = len(statements)
            rows[variant] = {
                "us_per_request": [round(med, 2), round(low, 2), round(high, 2)],
                "us_per_query": [round(med / n, 2), round(low / n, 2), round(high / n, 2)],
            }
        summary["workloads"][workload] = {
            "queries": len(statements),
            "off_us_per_request": round(statistics.median(off) * 1e6, 2),
            "added": rows,
        }
    summary["span_start_end_us"] = round(statistics.median(_span_anchor_us(server, 5000) for _ in range(5)), 2)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--quick", action="store_true", help="9 rounds of fewer requests: a smoke run")
    args = parser.parse_args()
    rounds = 9 if args.quick else args.rounds
    per_round = {"selectin": 100, "lazy": 10} if args.quick else {"selectin": 400, "lazy": 40}
    summary = measure(rounds, per_round)
    print(f"CPU time added above 'off' (median of {rounds} paired rounds [95% interval]), µs")
    for workload, data in summary["workloads"].items():
        print(f"\n{workload}: {data['queries']} statements, off = {data['off_us_per_request']} µs per request")
        print(f"  {'variant':<26}{'per request':>28}{'per query':>26}")
        for variant, row in data["added"].items():
            req, query = row["us_per_request"], row["us_per_query"]
            print(
                f"  {variant:<26}{req[0]:>10.2f} [{req[1]:>7.2f}, {req[2]:>7.2f}]"
                f"{query[0]:>10.2f} [{query[1]:>6.2f}, {query[2]:>6.2f}]"
            )
    print(f"\nanchor: one bare span start + end = {summary['span_start_end_us']} µs")


if __name__ == "__main__":
    main()
