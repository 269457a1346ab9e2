"""The profiler's cost in instructions: a figure the shared machine cannot move.

CPU time per request on 2 shared cores moves by more between rounds than the profiler costs (its 95 %
interval spanned 3–7 % of the selectin route in a quiet run, −1–13 % in a loaded one). The number of
instructions the app executes for a request does not depend on what else runs: Valgrind's Callgrind counts
them exactly (``perf stat`` would too, but virtual machines like this project's expose no hardware counters).

Each count runs CitizenApp in a child process under Callgrind, driving the ASGI app directly (no server, no
load generator: only the app's own work is counted, as on a production worker), once with ``warmup``
requests and once with ``warmup + requests``; the difference divided by ``requests`` is the instructions per
request, start-up and warm-up cancelled out. With and without the profiler, the two differences give its
cost. User-space instructions only: the kernel's share of a request (socket calls) is not in either figure,
so the ratio is the profiler's share of the app's own code, a little above its share of CPU time.

    python -m pgpulse.bench.instructions DATABASE_URL PATH [--requests N]   (a seeded CitizenApp database)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass

from pgpulse.errors import one_line
from pgpulse.sql import redact_text

VALGRIND_LINE = re.compile(r"^==\d+==")
COLLECTED = re.compile(r"^==\d+== Collected : (\d+)\s*$", re.MULTILINE)
WARMUP = 30


class NoValgrind(RuntimeError):
    """Valgrind is not installed: the figure is left out (Debian: ``apt-get install valgrind``)."""


def collected(stderr: str) -> int:
    """The instruction count Callgrind prints when the program ends (``==pid== Collected : N``)."""
    found = COLLECTED.findall(stderr)
    if len(found) != 1:
        tail = stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"callgrind printed no instruction count: {tail[0]}")
    return int(found[0])


async def count(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Instructions (Callgrind's Ir) the program ``argv`` executed in user space, children not followed."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise NoValgrind("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="pgpulse-callgrind-") as tmp:
        proc = await asyncio.create_subprocess_exec(
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(tmp, 'callgrind.out')}",
            *argv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            # The same hash seed every time: set and dict layouts (and so the work) then repeat exactly.
            env={**(env or os.environ), "PYTHONHASHSEED": "0"},
        )
        _, err = await proc.communicate()
    text = err.decode(errors="replace")
    if proc.returncode != 0:
        # the program's own last line, not Valgrind's summary after it
        own = [line for line in text.strip().splitlines() if line.strip() and not VALGRIND_LINE.match(line)]
        raise RuntimeError(f"the counted program failed: {own[-1] if own else 'no output'}")
    return collected(text)


@dataclass(frozen=True)
class PerRequest:
    off: float  # instructions per request without the profiler
    on: float
    requests: int

    @property
    def added(self) -> float:
        return self.on - self.off

    @property
    def added_pct(self) -> float:
        return self.added / self.off * 100 if self.off else 0.0


async def profiler_per_request(database_url: str, path: str, requests: int) -> PerRequest:
    """Instructions per request of ``GET path`` with and without the profiler (four counted runs, two at a
    time: one per core)."""

    def child(profiler: bool, n: int) -> list[str]:
        mode = "on" if profiler else "off"
        return [sys.executable, "-m", "pgpulse.bench.instructions", "--child", database_url, path, mode, str(n)]

    runs = [(p, n) for p in (False, True) for n in (WARMUP, WARMUP + requests)]
    gate = asyncio.Semaphore(2)

    async def one(profiler: bool, n: int) -> int:
        async with gate:
            return await count(child(profiler, n))

    counts = await asyncio.gather(*(one(p, n) for p, n in runs))
    by_run = dict(zip(runs, counts, strict=True))
    per = {p: (by_run[(p, WARMUP + requests)] - by_run[(p, WARMUP)]) / requests for p in (False, True)}
    return PerRequest(off=per[False], on=per[True], requests=requests)


async def _drive(database_url: str, path: str, profiler: bool, n: int) -> None:
    """The counted program: CitizenApp in this process, ``n`` GETs of ``path`` through its ASGI interface."""
    from pgpulse.bench.appserver import asgi_get
    from pgpulse.db.urls import async_url
    from pgpulse.demo.app import create_app
    from pgpulse.settings import Settings

    url = async_url(database_url).render_as_string(hide_password=False)
    settings = Settings(database_url=url, profiler_enabled=profiler, metrics_route=False)
    app = create_app(url, settings)
    async with app.router.lifespan_context(app):
        for _ in range(n):
            status = await asgi_get(app, path)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description="the profiler's instructions per request (Callgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("database_url")
    parser.add_argument("path", help="e.g. /users/ID/posts?strategy=selectin")
    parser.add_argument("mode", nargs="?", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("n", nargs="?", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_drive(args.database_url, args.path, args.mode == "on", args.n))
        return 0
    try:
        result = asyncio.run(profiler_per_request(args.database_url, args.path, args.requests))
    except (NoValgrind, RuntimeError, OSError) as exc:
        print(f"error: {redact_text(one_line(exc))}", file=sys.stderr)
        return 2
    print(
        f"{result.requests} requests: {result.off:,.0f} instructions per request without the profiler, "
        f"{result.on:,.0f} with it: +{result.added:,.0f} = {result.added_pct:.2f} %"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
