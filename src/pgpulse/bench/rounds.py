"""Interleaved rounds: variant A, B, C, then C, B, A, so a noisy neighbour hurts every variant alike.

Measuring all of A and then all of B would turn a burst of load from another process into a fake
difference between A and B; interleaving spreads it over both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import psutil

from pgpulse.bench.loadgen import LoadResult, run_load
from pgpulse.bench.stats import Round


@dataclass(frozen=True)
class HttpCase:
    key: str
    port: int
    path: str
    concurrency: int
    pid: int | None = None  # the server process: its CPU time per request is measured when given


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU time of process ``pid``: nanoseconds from the scheduler (``/proc/<pid>/task/*/schedstat``) where
    Linux has it, else psutil's clock ticks (10 ms each: 0.6 ms per request over a 16-request round, as
    large as the profiler's whole cost). A thread that exits between two readings takes its time with it;
    the app's threads (event loop, anyio's worker pool) live as long as the process."""
    if pid is None:
        return None
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    total_ns, read = 0, 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total_ns += int(f.read().split()[0])
            read += 1
        except (OSError, ValueError, IndexError):
            continue  # the thread exited after the listing
    if read:
        return total_ns / 1e9
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def server_cpu_ms_per_request(results: Sequence[LoadResult]) -> float | None:
    """Server CPU per response: unlike latency, barely moved by other processes competing for the cores."""
    cpu = [r.server_cpu_s for r in results]
    total = sum(r.total for r in results)
    if any(c is None for c in cpu) or not total:
        return None
    return round(sum(c for c in cpu if c is not None) / total * 1000.0, 4)


async def http_rounds(
    cases: Sequence[HttpCase], rounds: int, seconds: float, warmup: float
) -> dict[str, list[LoadResult]]:
    results: dict[str, list[LoadResult]] = {c.key: [] for c in cases}
    for i in range(rounds):
        # A B C, then C B A: whoever goes first in a round does not always get the same slot.
        for case in cases if i % 2 == 0 else list(reversed(cases)):
            cpu_before = _cpu_seconds(case.pid)
            # one recorded request per client at least: a starved machine must not leave a round empty
            result = await run_load(
                case.port, case.path, case.concurrency, seconds, warmup, min_requests=case.concurrency
            )
            cpu_after = _cpu_seconds(case.pid)
            if cpu_before is not None and cpu_after is not None:
                result.server_cpu_s = cpu_after - cpu_before
            results[case.key].append(result)
    return results


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
