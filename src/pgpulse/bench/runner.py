"""Run the pairs: one database, seeded once, every pair in turn; then JSON, Markdown and plots.

``run_bench`` is the Python API (tests call it); ``run_cli`` adds argument checks and the printed report, and
raises :class:`BenchError` (one line, shown by ``pgpulse.cli``) instead of exiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from pgpulse.bench import bloat, composite, eager, overindex, pooling, profiler_overhead, whole_app, workers
from pgpulse.bench.context import BenchContext, Sizes, create_bench_data, drop_bench_data, machine_facts
from pgpulse.bench.report import compare_runs, write_outputs
from pgpulse.bench.stats import PairResult
from pgpulse.db.urls import DatabaseURLError, libpq_url, redact
from pgpulse.demo.embedded import EmbeddedError, ephemeral_server
from pgpulse.errors import UserError, one_line

PairRunner = Callable[[BenchContext], Awaitable[PairResult]]
PAIRS: dict[str, PairRunner] = {
    "eager": eager.run,
    "composite": composite.run,
    "overindex": overindex.run,
    "pooling": pooling.run,
    "bloat": bloat.run,
    "profiler": profiler_overhead.run,
    "app": whole_app.run,
    "workers": workers.run,
}
SCHEMA = 1


class BenchError(UserError):
    """The benchmark could not run: a bad argument, an output directory it cannot create, a failing server."""


def parse_only(only: str | None) -> list[str]:
    """Pair names in run order; raises UserError naming the unknown ones."""
    if not only:
        return list(PAIRS)
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in PAIRS]
    if unknown or not wanted:
        raise UserError(f"unknown pair {', '.join(unknown) or repr(only)} for --only: choose from {', '.join(PAIRS)}")
    return [n for n in PAIRS if n in wanted]


def load_results(path: str | Path) -> dict[str, Any]:
    """An earlier run's JSON; raises UserError when it is missing or not a pgpulse bench result."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"compare file {p} does not exist: pass the latest.json of an earlier run") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read compare file {p}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or "pairs" not in data:
        raise UserError(f"{p} is not a pgpulse bench result (schema {SCHEMA})")
    return data


Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _run(url: str, names: list[str], quick: bool, log: Log) -> tuple[dict[str, Any], list[PairResult]]:
    sizes = Sizes.quick() if quick else Sizes.full()
    began = time.perf_counter()
    machine = await machine_facts(url)
    log(
        f"machine: {machine['cores']} cores, {machine['cpu_model']}, PostgreSQL {machine['postgresql']}, "
        f"Python {machine['python']}, load average {machine['loadavg_start']}"
    )
    log(f"seeding {sizes.posts:,} posts ({'quick' if quick else 'full'} run) ...")
    data = await create_bench_data(url, sizes)
    log(f"seeded in {data.seed_seconds} s: {data.posts:,} posts, {data.comments:,} comments")
    ctx = BenchContext(sizes=sizes, quick=quick, data=data, machine=machine)
    pairs: list[PairResult] = []
    try:
        for name in names:
            log(f"pair {name} ...")
            t0 = time.perf_counter()
            try:
                pair = await PAIRS[name](ctx)
            except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
                # One broken pair must not throw away the minutes the others took: record it, go on.
                message = one_line(exc)
                log(f"pair {name} FAILED: {message}")
                pairs.append(PairResult(name, name, error=message))
                continue
            pair.seconds = time.perf_counter() - t0
            pairs.append(pair)
            summary = ", ".join(f"{k} {v}" for k, v in pair.ratios.items())
            log(f"pair {name} done in {pair.seconds:.0f} s: {summary}")
    finally:
        await drop_bench_data(data)
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "schema": SCHEMA,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "duration_s": round(time.perf_counter() - began, 1),
        "machine": machine,
        "data": ctx.facts(),
        "sizes": sizes.__dict__,
        "pairs": {p.name: p.to_json() for p in pairs},
        # A quick run's small data cannot reach the full-scale targets (composite 7x vs >= 100x): its figures are
        # shown, never judged.
        "targets": [
            {
                "pair": p.name,
                **t.to_json(),
                "judged": not quick and t.judged,
                "reason": "quick run" if quick else t.reason,
            }
            for p in pairs
            for t in p.targets
        ],
    }
    return result, pairs


def run_bench(
    database_url: str | None, names: list[str], *, quick: bool, out: Path, log: Log = _stderr
) -> dict[str, Any]:
    """Run ``names`` against ``database_url`` (a throw-away embedded server when None) and write ``out``."""
    if database_url:
        result, pairs = asyncio.run(_run(database_url, names, quick, log))
    else:
        log("starting a throw-away embedded PostgreSQL ...")
        with ephemeral_server() as server:
            result, pairs = asyncio.run(_run(server.url(), names, quick, log))
    written = write_outputs(result, pairs, out)
    return {**result, "files": written}


def checked_url(database_url: str | None) -> str | None:
    """The URL in the one form both drivers parse alike (percent-encoded), or None for a throw-away server.

    Raises DatabaseURLError for anything that is not a usable postgresql:// URL, including ``''``: asyncpg
    would otherwise raise its own errors (or read an unencoded password as the port) deep inside a pair."""
    if database_url is None:
        return None
    if not database_url.strip():
        raise DatabaseURLError("the database URL is empty: pass postgresql://user:password@host:port/dbname, or none")
    return libpq_url(database_url)


def fresh_out_dir(now: datetime | None = None) -> Path:
    """A new folder under the current directory for this run: never the committed ``bench/results``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    base = Path(f"pgpulse-bench-{stamp}")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = Path(f"{base}-{n}")
    return candidate


def run_cli(
    database_url: str | None, *, only: str | None, quick: bool, out: str | None, compare: str | None
) -> tuple[list[str], Path]:
    """Run the benchmark and print its report; return the pairs that failed and the report's path."""
    names = parse_only(only)  # UserError: one line through the CLI
    old = load_results(compare) if compare else None
    url = checked_url(database_url)  # DatabaseURLError, a UserError as well
    out_dir = Path(out) if out else fresh_out_dir()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create output directory {out_dir}: {exc.strerror}") from exc
    try:
        result = run_bench(url, names, quick=quick, out=out_dir)
    except Exception as exc:  # the command's edge: one redacted line, whatever the driver raised
        where = redact(url) if url else "the embedded server"
        reason = one_line(exc)
        if not isinstance(exc, (OSError, asyncpg.PostgresError, DatabaseURLError, EmbeddedError)):
            reason = f"{type(exc).__name__}: {reason}"
        raise BenchError(f"bench failed on {where}: {reason}") from exc
    print((out_dir / "latest.md").read_text())
    if old is not None:
        table = compare_runs(old, result)
        with (out_dir / "latest.md").open("a") as f:
            f.write("\n" + table)
        print(table)
    print(f"results: {', '.join(result['files'])}")
    failed = [name for name, pair in result["pairs"].items() if pair.get("error")]
    return failed, out_dir / "latest.md"
