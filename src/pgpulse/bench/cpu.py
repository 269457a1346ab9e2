"""Who used the CPU during a round: the app's processes, PostgreSQL's, the load generator's, and everything else.

Latency on a shared 2-core machine says little about *why* a variant is slow; CPU time does. The workers pair
needs all four shares: a second uvicorn worker can only add throughput if there is CPU left for it, and on 2
cores PostgreSQL and the load generator take theirs from the same cores. From the shares per request follows
the most any number of workers could serve (:func:`ceiling`), so a scaling figure can be judged against what
the machine allows instead of against an ideal it cannot reach.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import asyncpg
import psutil


def _schedstat_seconds(pid: int) -> float | None:
    """CPU of every thread of ``pid`` from the scheduler's nanosecond counters, or None where Linux lacks them.

    A thread that exits between two readings takes its time with it; the app's threads (event loop, anyio's
    worker pool) live as long as the process."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total_ns, read = 0, 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total_ns += int(f.read().split()[0])
            read += 1
        except (OSError, ValueError, IndexError):
            continue  # the thread exited after the listing
    return total_ns / 1e9 if read else None


def process_seconds(pid: int | None, *, children: bool = False) -> float | None:
    """CPU seconds of process ``pid`` (and, with ``children``, of its live descendants: uvicorn's workers).

    Nanoseconds from the scheduler where Linux has them, else psutil's clock ticks (10 ms each: 0.6 ms per
    request over a 16-request round, as large as the profiler's whole cost)."""
    if pid is None:
        return None
    pids = [pid]
    if children:
        try:
            pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return None
    total = 0.0
    for p in pids:
        seconds = _schedstat_seconds(p)
        if seconds is None:
            try:
                times = psutil.Process(p).cpu_times()
            except psutil.Error:
                if p == pid:
                    return None
                continue  # a worker that exited between listing and reading
            seconds = float(times.user + times.system)
        total += seconds
    return total


def server_seconds(postmaster: psutil.Process | None) -> float | None:
    """CPU of a PostgreSQL server: the postmaster, its live children, and the children it has reaped (a
    NullPool backend lives for one request, then its CPU moves to the postmaster's children_* counters)."""
    if postmaster is None:
        return None
    try:
        t = postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in postmaster.children():
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass  # exited between listing and reading: counted in children_* next time
        return float(total)
    except psutil.Error:
        return None


async def postmaster_of(url: str) -> psutil.Process | None:
    """The server's postmaster when it runs on this machine and we may read it; else None (figures left out).

    Looked up while our backend is alive: once the connection closes its pid has no parent to ask."""
    conn = await asyncpg.connect(url)
    try:
        pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        try:
            parent = psutil.Process(pid).parent()
            if parent is None:
                return None
            parent.cpu_times()
            return parent
        except psutil.Error:
            return None
    finally:
        await conn.close()


def machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine spent on anything but idling (``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user already
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Shares:
    """CPU milliseconds per served request, by who spent them."""

    app_ms: float
    database_ms: float
    loadgen_ms: float
    other_ms: float  # the rest of the machine's busy time: the kernel's loopback work, other tenants

    @property
    def total_ms(self) -> float:
        return self.app_ms + self.database_ms + self.loadgen_ms + self.other_ms


def ceiling(shares: Shares, workers: int, cores: int) -> float:
    """The most requests per second ``workers`` single-threaded app processes can serve on ``cores`` cores when
    every request also costs the database, load-generator and other CPU in ``shares``: each worker is one core
    at most (the GIL), and all of it shares the cores."""
    if shares.app_ms <= 0 or shares.total_ms <= 0:
        return 0.0
    return min(workers * 1000.0 / shares.app_ms, cores * 1000.0 / shares.total_ms)
