"""Interleaved rounds: variant A, B, C, then C, B, A, so a noisy neighbour hurts every variant alike.

Measuring all of A and then all of B would turn a burst of load from another process into a fake
difference between A and B; interleaving spreads it over both.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import psutil

from pgpulse.bench import cpu
from pgpulse.bench.loadgen import LoadResult, run_load
from pgpulse.bench.stats import Round


@dataclass(frozen=True)
class HttpCase:
    key: str
    port: int
    path: str
    concurrency: int
    pid: int | None = None  # the server process: its CPU time per request is measured when given
    children: bool = False  # count the server's child processes too (uvicorn --workers: the workers)


def _ms_per_response(results: Sequence[LoadResult], seconds: Callable[[LoadResult], float | None]) -> float | None:
    """CPU ms per response (every response, warm-up included: the CPU was spent on those too) of one measure of
    the rounds; None unless every round has it."""
    values = [seconds(r) for r in results]
    total = sum(r.total for r in results)
    if not total or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) * 1000.0 / total


def server_cpu_ms_per_request(results: Sequence[LoadResult]) -> float | None:
    """Server CPU per response: unlike latency, barely moved by other processes competing for the cores."""
    ms = _ms_per_response(results, lambda r: r.server_cpu_s)
    return None if ms is None else round(ms, 4)


def _delta(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


async def http_rounds(
    cases: Sequence[HttpCase],
    rounds: int,
    seconds: float,
    warmup: float,
    postmaster: psutil.Process | None = None,
) -> dict[str, list[LoadResult]]:
    """``postmaster``: the database server's, when it runs here; its CPU per round is then recorded too."""
    results: dict[str, list[LoadResult]] = {c.key: [] for c in cases}
    for i in range(rounds):
        # A B C, then C B A: whoever goes first in a round does not always get the same slot.
        for case in cases if i % 2 == 0 else list(reversed(cases)):
            app0 = cpu.process_seconds(case.pid, children=case.children)
            db0, busy0 = cpu.server_seconds(postmaster), cpu.machine_busy_seconds()
            # one recorded request per client at least: a starved machine must not leave a round empty
            result = await run_load(
                case.port, case.path, case.concurrency, seconds, warmup, min_requests=case.concurrency
            )
            result.server_cpu_s = _delta(app0, cpu.process_seconds(case.pid, children=case.children))
            result.db_cpu_s = _delta(db0, cpu.server_seconds(postmaster))
            result.machine_busy_s = _delta(busy0, cpu.machine_busy_seconds())
            results[case.key].append(result)
    return results


def cpu_shares(results: Sequence[LoadResult]) -> cpu.Shares | None:
    """CPU ms per response over ``results``, by who spent it; None unless every share was measured.

    The load generator's and the machine's figures span the whole round, warm-up included, as do the app's and
    the database's; so does ``total`` (every response, warm-up included): the ratio is per response served."""
    app = _ms_per_response(results, lambda r: r.server_cpu_s)
    db = _ms_per_response(results, lambda r: r.db_cpu_s)
    lg = _ms_per_response(results, lambda r: r.loadgen_cpu_s)
    busy = _ms_per_response(results, lambda r: r.machine_busy_s)
    if app is None or db is None or lg is None or busy is None:
        return None
    return cpu.Shares(app, db, lg, max(0.0, busy - app - db - lg))


async def timed_loop(
    call: Callable[[], Awaitable[object]], budget_s: float, *, min_n: int = 5, max_n: int = 100_000
) -> Round:
    """Call ``call`` sequentially for about ``budget_s`` seconds (at least ``min_n`` times); one Round."""
    latencies: list[float] = []
    clock = time.perf_counter
    began = clock()
    deadline = began + budget_s
    while len(latencies) < max_n:
        t0 = clock()
        await call()
        t1 = clock()
        latencies.append((t1 - t0) * 1000.0)
        if t1 >= deadline and len(latencies) >= min_n:
            break
    return Round(latencies, clock() - began)


async def interleaved_loops(
    calls: dict[str, Callable[[], Awaitable[object]]], rounds: int, budget_s: float, *, warmup: int = 3, min_n: int = 5
) -> dict[str, list[Round]]:
    """``timed_loop`` for each call, round-robin; the budget is per variant over all rounds."""
    for call in calls.values():
        for _ in range(warmup):
            await call()
    out: dict[str, list[Round]] = {k: [] for k in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            out[key].append(await timed_loop(call, budget_s / rounds, min_n=max(1, min_n // rounds)))
    return out
