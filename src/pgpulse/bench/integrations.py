"""What each production integration costs, per query and per request, side by side in one run.

Each variant runs in a child process of its own — prometheus-client picks its multiprocess mode when it is first
imported, and an OpenTelemetry or Sentry SDK is process-wide state — and the parent interleaves their rounds
(A B C, then C B A…), so a burst from a neighbour lands on every variant alike. A round is a batch of simulated
requests timed with the child's process CPU time (``time.process_time``: every thread, the metrics flusher
included; other processes' load barely moves it).

A simulated request goes through the variant's real entry point — ``PgPulseMiddleware`` (ASGI, driven without an
event loop: nothing in it suspends) or ``PgPulseWSGIMiddleware`` (WSGI: the body iterated and closed) — into an
app that calls the cursor listeners ``instrument()`` registered, once per statement, with a stand-in cursor and
execution context (as ``pgpulse.bench.profiler_overhead`` does: a database round trip is 20-100 µs with a spread
far larger than the few µs measured here). The off variants run the same apps with no-op listeners and no
middleware. Three request shapes:

* ``3q``: three distinct statements (a selectin request);
* ``43q``: forty more distinct statements. Per query = (cost at 43q − cost at 3q) / 40; per request = cost at 3q
  − 3 × per query. No shape repeats, so no N+1 detection or stack walk is in these two;
* ``n+1``: 2 + 50 statements, the last one 50 times (the lazy route): the cost of finding an N+1, stack walks,
  the finding's metrics and log event included (the event goes to a structlog logger that drops it).

Each variant's cost is the median over rounds of (variant − its baseline, same round), with a distribution-free
95 % confidence interval of that median (order statistics of the binomial). The baseline is the off variant of
the same kind; for "profiler + OpenTelemetry / Sentry" it is the same SDK without the profiler, so the figure is
what pgpulse adds to an app that SDK already traces.

To add a variant: one :class:`Variant` in :data:`VARIANTS`; ``setup`` (run in the child) returns the ``on_record``
hooks and, optionally, a context manager factory wrapped around each request (an OpenTelemetry server span, a
Sentry transaction); ``requires`` lists modules that must be importable, or the variant is skipped with a note.

    python -m pgpulse.bench.integrations [--quick] [--rounds N] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from pgpulse.bench.listener_stubs import StubContext, StubCursor, noop_after, noop_before
from pgpulse.types import ASGIApp

Kind = Literal["asgi", "wsgi"]
Around = Callable[[], contextlib.AbstractContextManager[Any]]
Setup = Callable[[], tuple[list[Callable[[Any], None]], Around | None]]

SHAPES = ("3q", "43q", "n+1")
EXTRA_QUERIES = 40  # 43q − 3q
LAZY_REPEATS = 50
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Variant:
    name: str
    kind: Kind
    profiler: bool = True
    env: dict[str, str] = field(default_factory=dict)
    setup: str | None = None  # "module:function" returning (hooks, around), run in the child
    requires: tuple[str, ...] = ()
    baseline: str | None = None  # the variant it is compared with, round by round


OFF_ASGI, OFF_WSGI = "off (ASGI)", "off (WSGI)"
OTEL_ONLY, SENTRY_ONLY = "OpenTelemetry span only (no profiler)", "Sentry transaction only (no profiler)"
OTEL_MODULES = ("pgpulse.profiler.otel", "opentelemetry.sdk")
SENTRY_MODULES = ("pgpulse.profiler.sentry", "sentry_sdk")
MULTIPROC_DIR = "{multiproc_dir}"  # replaced by a fresh directory per run
VARIANTS: list[Variant] = [
    Variant(OFF_ASGI, "asgi", profiler=False),
    Variant("profiler (ASGI middleware)", "asgi", baseline=OFF_ASGI),
    Variant(
        "profiler + multiprocess Prometheus",
        "asgi",
        env={"PROMETHEUS_MULTIPROC_DIR": MULTIPROC_DIR},
        baseline=OFF_ASGI,
    ),
    # The SDKs' own cost (a server span / a transaction per request, no profiler) is a baseline of its own, so
    # "profiler + X" shows what pgpulse adds to an app X already traces.
    Variant(
        OTEL_ONLY,
        "asgi",
        profiler=False,
        setup="pgpulse.bench.integrations:otel_setup",
        requires=OTEL_MODULES,
        baseline=OFF_ASGI,
    ),
    Variant(
        "profiler + OpenTelemetry",
        "asgi",
        setup="pgpulse.bench.integrations:otel_setup",
        requires=OTEL_MODULES,
        baseline=OTEL_ONLY,
    ),
    Variant(
        SENTRY_ONLY,
        "asgi",
        profiler=False,
        setup="pgpulse.bench.integrations:sentry_setup",
        requires=SENTRY_MODULES,
        baseline=OFF_ASGI,
    ),
    Variant(
        "profiler + Sentry",
        "asgi",
        setup="pgpulse.bench.integrations:sentry_setup",
        requires=SENTRY_MODULES,
        baseline=SENTRY_ONLY,
    ),
    Variant(OFF_WSGI, "wsgi", profiler=False),
    Variant("profiler (WSGI middleware)", "wsgi", baseline=OFF_WSGI),
]


# ---- integrations' setups (run in the child) -------------------------------------------------------------------


def otel_setup() -> tuple[list[Callable[[Any], None]], Around | None]:
    """The OpenTelemetry exporter on an in-memory SDK, each request inside a recording server span."""
    otel: Any = importlib.import_module("pgpulse.profiler.otel")
    telemetry = otel.in_memory_telemetry()

    def around() -> contextlib.AbstractContextManager[Any]:
        telemetry.spans.clear()  # the in-memory exporter keeps every span: do not let the run grow it
        return telemetry.server_span("GET /users/{user_id}/posts")  # type: ignore[no-any-return]

    return [telemetry.exporter], around


def sentry_setup() -> tuple[list[Callable[[Any], None]], Around | None]:
    """The Sentry exporter with an initialised SDK whose transport keeps nothing, each request a transaction."""
    sentry_sdk: Any = importlib.import_module("sentry_sdk")
    sentry: Any = importlib.import_module("pgpulse.profiler.sentry")
    transport = importlib.import_module("sentry_sdk.transport")

    class Dropping(transport.Transport):  # type: ignore[misc,name-defined]
        def capture_envelope(self, envelope: Any) -> None:
            return None

    sentry_sdk.init(dsn="https://key@localhost/1", transport=Dropping, traces_sample_rate=1.0)

    def around() -> contextlib.AbstractContextManager[Any]:
        return sentry_sdk.start_transaction(op="http.server", name="GET /users/{user_id}/posts")  # type: ignore[no-any-return]

    return [sentry.SentryExporter()], around


# ---- the child: one variant, rounds on demand ------------------------------------------------------------------


class _Route:
    """What Starlette puts in the scope as ``scope["route"]``: the template the metrics are labelled with."""

    path_format = path = "/users/{user_id}/posts"

    def endpoint(self) -> None:
        return None


def _statements() -> dict[str, list[str]]:
    distinct = [f"SELECT t{i}.a, t{i}.b FROM t{i} WHERE t{i}.id = $1::BIGINT" for i in range(3 + EXTRA_QUERIES)]
    lazy = "SELECT comments.id, comments.text FROM comments WHERE $1::BIGINT = comments.post_id"
    return {"3q": distinct[:3], "43q": distinct, "n+1": [*distinct[:2], *([lazy] * LAZY_REPEATS)]}


class _Child:
    def __init__(self, variant: Variant) -> None:
        import structlog

        # Findings are logged as in production, into a logger that drops them: the cost of building the event
        # is measured, not a terminal's.
        structlog.configure(logger_factory=lambda *a: structlog.PrintLogger(open(os.devnull, "w")))  # noqa: SIM115
        self.variant = variant
        self.contexts = {shape: [StubContext(s) for s in statements] for shape, statements in _statements().items()}
        self.cursor = StubCursor()
        before, after = noop_before, noop_after
        hooks: list[Callable[[Any], None]] = []
        self.around: Around | None = None
        if variant.profiler:
            from sqlalchemy import create_engine

            from pgpulse.profiler import instrument

            engine = create_engine("postgresql+psycopg://bench@127.0.0.1:9/none")  # never connects
            instrument(engine, slow_query_ms=1e9)
            (before,), (after,) = (
                list(engine.dispatch.before_cursor_execute),
                list(engine.dispatch.after_cursor_execute),
            )
        if variant.setup:
            module, _, name = variant.setup.partition(":")
            hooks, self.around = getattr(importlib.import_module(module), name)()
        self.before, self.after = before, after
        self.shape = "3q"
        self.app: Callable[[], None] = self._asgi(hooks) if variant.kind == "asgi" else self._wsgi(hooks)

    def _queries(self) -> None:
        before, after, cursor, params = self.before, self.after, self.cursor, (1,)
        for ctx in self.contexts[self.shape]:
            before(None, cursor, ctx.statement, params, ctx, False)
            after(None, cursor, ctx.statement, params, ctx, False)

    def _asgi(self, hooks: list[Callable[[Any], None]]) -> Callable[[], None]:
        route = _Route()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            scope["route"], scope["path_params"] = route, {"user_id": "21"}  # as the router does
            self._queries()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            return None

        asgi: Any = app
        if self.variant.profiler:
            from pgpulse.profiler import PgPulseMiddleware

            asgi = PgPulseMiddleware(cast(ASGIApp, app), on_record=hooks)

        def request() -> None:
            scope = {"type": "http", "method": "GET", "path": "/users/21/posts", "root_path": "", "headers": []}
            coroutine = asgi(scope, receive, send)
            try:
                coroutine.send(None)  # nothing suspends: one step runs the request to the end
            except StopIteration:
                return
            raise RuntimeError("the simulated request suspended")

        return request

    def _wsgi(self, hooks: list[Callable[[Any], None]]) -> Callable[[], None]:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            self._queries()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b"{}"]

        wsgi: Any = app
        if self.variant.profiler:
            from pgpulse.profiler.wsgi import PgPulseWSGIMiddleware

            wsgi = PgPulseWSGIMiddleware(app, on_record=hooks, route_for=lambda environ: "/users/{user_id}/posts")
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/users/21/posts", "SCRIPT_NAME": ""}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return None

        def request() -> None:
            body = wsgi(dict(environ), start_response)
            for _ in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

        return request

    def run(self, shape: str, requests: int) -> float:
        """Process CPU seconds for ``requests`` simulated requests of ``shape``."""
        self.shape = shape
        request, around = self.app, self.around
        began = time.process_time()
        if around is None:
            for _ in range(requests):
                request()
        else:
            for _ in range(requests):
                with around():
                    request()
        return time.process_time() - began


def _child_main(name: str) -> None:
    variant = next(v for v in VARIANTS if v.name == name)
    child = _Child(variant)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        print(json.dumps({"cpu_s": child.run(command["shape"], command["requests"])}), flush=True)


# ---- the parent: interleaved rounds, medians, confidence intervals ---------------------------------------------


@dataclass
class _Running:
    variant: Variant
    process: subprocess.Popen[str]

    def ask(self, shape: str, requests: int) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"shape": shape, "requests": requests}) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"benchmark child {self.variant.name!r} exited")
        return float(json.loads(answer)["cpu_s"])


def available(variant: Variant) -> str | None:
    """None when the variant can run here, else why not."""
    for module in variant.requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"skipped {variant.name}: {module} is not installed"
    return None


def median_ci(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(median, low, high): the order-statistic interval that covers the median with at least ``confidence``
    (binomial, no assumption on the distribution); the whole range when there are too few rounds for it."""
    xs = sorted(values)
    n = len(xs)
    median = statistics.median(xs)
    k = 0  # the largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2
    tail = 0.0
    for j in range(n):
        tail += math.comb(n, j) / 2**n
        if tail > (1 - confidence) / 2:
            break
        k = j + 1
    if k == 0:
        return median, xs[0], xs[-1]
    return median, xs[k - 1], xs[n - k]


def _requests_for(shape: str, quick: bool) -> int:
    per_shape = {"3q": 2000, "43q": 300, "n+1": 150}[shape]
    return per_shape // 4 if quick else per_shape


def selected(only: list[str] | None) -> list[Variant]:
    """The variants whose name contains one of ``only`` (case-insensitive), with their baselines; all for None."""
    if not only:
        return list(VARIANTS)
    by_name = {v.name: v for v in VARIANTS}
    wanted = {v.name for v in VARIANTS if any(text.lower() in v.name.lower() for text in only)}
    pending = list(wanted)
    while pending:
        base = by_name[pending.pop()].baseline
        if base is not None and base not in wanted:
            wanted.add(base)
            pending.append(base)
    return [v for v in VARIANTS if v.name in wanted]


def run(rounds: int, quick: bool, log: Callable[[str], None] = print, only: list[str] | None = None) -> dict[str, Any]:
    multiproc_dir = tempfile.mkdtemp(prefix="pgpulse-bench-multiproc-")
    runnable, notes = [], []
    for variant in selected(only):
        why = available(variant)
        if why:
            notes.append(why)
            log(why)
        else:
            runnable.append(variant)
    children: list[_Running] = []
    try:
        for variant in runnable:
            env = {
                k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
            }
            env.update({k: v.replace(MULTIPROC_DIR, multiproc_dir) for k, v in variant.env.items()})
            process = subprocess.Popen(
                [sys.executable, "-m", "pgpulse.bench.integrations", "--child", variant.name],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            children.append(_Running(variant, process))
        for child in children:
            assert child.process.stdout is not None
            if not child.process.stdout.readline():
                raise RuntimeError(f"benchmark child {child.variant.name!r} failed to start")
            for shape in SHAPES:  # warm-up: caches, code paths, the first series of each metric
                child.ask(shape, _requests_for(shape, quick) // 2)
        # per variant, shape: CPU µs per request, one value per round
        per_request: dict[str, dict[str, list[float]]] = {c.variant.name: {s: [] for s in SHAPES} for c in children}
        for i in range(rounds):
            order = children if i % 2 == 0 else list(reversed(children))
            for shape in SHAPES:
                n = _requests_for(shape, quick)
                for child in order:
                    per_request[child.variant.name][shape].append(child.ask(shape, n) / n * 1e6)
            log(f"round {i + 1}/{rounds} done")
    finally:
        for child in children:
            if child.process.stdin is not None:
                child.process.stdin.close()
            child.process.wait(timeout=30)
    return _summarize(runnable, per_request, notes, rounds, quick)


def _summarize(
    variants: list[Variant], per_request: dict[str, dict[str, list[float]]], notes: list[str], rounds: int, quick: bool
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for variant in variants:
        raw = per_request[variant.name]
        entry: dict[str, Any] = {
            "kind": variant.kind,
            "cpu_us_per_request": {s: round(statistics.median(raw[s]), 3) for s in SHAPES},
        }
        if variant.baseline is not None and variant.baseline in per_request:
            base = per_request[variant.baseline]
            added = {s: [a - b for a, b in zip(raw[s], base[s], strict=True)] for s in SHAPES}
            per_query = [(big - small) / EXTRA_QUERIES for big, small in zip(added["43q"], added["3q"], strict=True)]
            fixed = [small - 3 * q for small, q in zip(added["3q"], per_query, strict=True)]
            entry["added_us"] = {
                "per_query": _ci(per_query),
                "per_request": _ci(fixed),
                "request_3q": _ci(added["3q"]),
                "request_n+1": _ci(added["n+1"]),
            }
        results[variant.name] = entry
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": rounds,
        "quick": quick,
        "confidence": CONFIDENCE,
        "python": sys.version.split()[0],
        "notes": notes,
        "baselines": {v.name: v.baseline for v in variants if v.baseline},
        "variants": results,
    }


def _ci(values: list[float]) -> dict[str, float]:
    median, low, high = median_ci(values)
    return {"median": round(median, 3), "low": round(low, 3), "high": round(high, 3)}


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Integration cost, process CPU µs added over each variant's baseline: median of {result['rounds']} "
        f"interleaved rounds [{int(result['confidence'] * 100)} % CI]",
        "",
        f"{'variant':38} {'per query':>22} {'per request':>22} {'3-query request':>22} {'N+1 request (52 q)':>24}",
    ]
    for name, entry in result["variants"].items():
        added = entry.get("added_us")
        if added is None:
            raw = entry["cpu_us_per_request"]
            lines.append(
                f"{name:38} baseline: {raw['3q']:.2f} µs (3q), {raw['43q']:.2f} µs (43q), {raw['n+1']:.2f} µs (n+1)"
            )
            continue
        cells = [_cell(added[key]) for key in ("per_query", "per_request", "request_3q", "request_n+1")]
        lines.append(f"{name:38} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {cells[3]:>24}")
    lines += [""]
    lines += [f"{name}: over {base}" for name, base in result["baselines"].items() if base not in (OFF_ASGI, OFF_WSGI)]
    lines += result["notes"]
    return "\n".join(lines)


def _cell(ci: dict[str, float]) -> str:
    return f"{ci['median']:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per round (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15, quick 5)")
    parser.add_argument("--out", default=None, help="a fresh folder for result.json (default: stdout only)")
    parser.add_argument(
        "--only", action="append", help="run the variants whose name contains this text (and their baselines)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child_main(args.child)
        return
    rounds = args.rounds or (5 if args.quick else 15)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.only and not selected(args.only):
        parser.error(f"no variant matches {args.only}: {', '.join(v.name for v in VARIANTS)}")
    result = run(rounds, args.quick, log=lambda line: print(line, file=sys.stderr), only=args.only)
    print(render(result))
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            parser.error(f"{out} is not empty: give a fresh folder")
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result, indent=2))
        print(f"\nwrote {out / 'result.json'}")


if __name__ == "__main__":
    main()
