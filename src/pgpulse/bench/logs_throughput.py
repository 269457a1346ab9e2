"""How fast ``pgpulse logs`` reads, and how much memory it needs, as the log grows: ``python -m
pgpulse.bench.logs_throughput [--sizes 10,100,1000] [--out DIR]``.

For each size it writes a stderr-format log of that many megabytes in a temporary directory (deleted afterwards),
runs ``pgpulse logs`` on it in a subprocess, and reports file size, wall time, MB/s and the peak RSS of that
process side by side. Memory should not move with the size: the reader streams with bounded buffers and keeps
per-shape aggregates only. Results go to a fresh folder (``--out``, which must not exist yet; by default a new
temporary one), never over earlier results.

The generated log is what a busy API's server writes with ``log_min_duration_statement = 0`` and auto_explain:
statements with literals inline (300 shapes over 60 tables), the extended protocol's parse/bind/execute lines
with ``DETAIL: parameters``, auto_explain plans with ``Query Parameters`` and ``Filter`` lines followed by their
statement's duration line, statements over several lines, and errors quoting their statement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

MB = 1024 * 1024
DEFAULT_SIZES_MB = (10, 100, 1000)
# Table names without digits: pg_query's fingerprint folds numeric suffixes (users_12, users_51: one shape).
TABLES = [f"{a}{b}" for a in "abcdef" for b in "abcdefghij"]
SECRET = "s3cr3t-param"  # a bound value written into every DETAIL and Query Parameters line

_SIMPLE = (
    "SELECT id, email, created_at FROM users_{t} WHERE id = {i}",
    "SELECT * FROM orders_{t} WHERE customer_id = {i} AND status = 'open' ORDER BY created_at DESC LIMIT 20",
    "UPDATE accounts_{t} SET balance = balance - {f} WHERE id = {i}",
    "INSERT INTO events_{t} (kind, payload, at) VALUES ('click', '{{\"n\": {i}}}', now())",
    "DELETE FROM sessions_{t} WHERE expires_at < now() - interval '{i} minutes'",
)
_MULTI = (
    "SELECT c.name,\n\t       count(*) AS orders\n\t  FROM customers_{t} c\n"
    "\t  JOIN orders_{t} o ON o.customer_id = c.id\n\t WHERE o.total > {f}\n\t GROUP BY c.name"
)
_EXTENDED = "SELECT * FROM items_{t} WHERE owner = $1 AND price > $2"
_PLAN = (
    "Query Text: SELECT * FROM items_{t} WHERE owner = $1 AND price > $2\n"
    "\tQuery Parameters: $1 = '" + SECRET + "{i}', $2 = '{i}'\n"
    "\tSeq Scan on items_{t}  (cost=0.00..105.00 rows=1 width=20) (actual time=0.012..{ms:.3f} rows=1 loops=1)\n"
    "\t  Filter: ((price > '{i}'::numeric) AND (owner = '" + SECRET + "{i}'::text))\n"
    "\t  Rows Removed by Filter: 4999\n"
    "\t  Buffers: shared hit=45"
)


@dataclass(frozen=True)
class Run:
    size_mb: float
    seconds: float
    mb_per_s: float
    cpu_seconds: float  # user + system time of the pgpulse process: what the load of a shared machine leaves out
    peak_rss_mb: float
    returncode: int


def _write_cycle(out: TextIO, rng: random.Random, clock: float) -> None:
    """One burst of a busy server's log: about forty records."""
    pid = rng.randrange(1000, 60000)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(clock))
    prefix = f"{stamp}.{rng.randrange(1000):03d} UTC [{pid}] app@shop "
    write = out.write
    for _ in range(24):
        t, i = rng.choice(TABLES), rng.randrange(1, 10**6)
        sql = _SIMPLE[rng.randrange(len(_SIMPLE))].format(t=t, i=i, f=i / 100)
        write(f"{prefix}LOG:  duration: {rng.lognormvariate(0, 1.5):.3f} ms  statement: {sql}\n")
    for _ in range(6):
        t, i = rng.choice(TABLES), rng.randrange(1, 10**6)
        sql = _EXTENDED.format(t=t)
        write(f"{prefix}LOG:  duration: 0.0{rng.randrange(10, 99)} ms  parse <unnamed>: {sql}\n")
        write(f"{prefix}LOG:  duration: 0.0{rng.randrange(10, 99)} ms  bind <unnamed>: {sql}\n")
        write(f"{prefix}DETAIL:  parameters: $1 = '{SECRET}{i}', $2 = '{i}'\n")
        write(f"{prefix}LOG:  duration: {rng.lognormvariate(0, 1):.3f} ms  execute <unnamed>: {sql}\n")
        write(f"{prefix}DETAIL:  parameters: $1 = '{SECRET}{i}', $2 = '{i}'\n")
    for _ in range(4):
        t, i = rng.choice(TABLES), rng.randrange(1, 10**6)
        ms = rng.lognormvariate(1, 1)
        write(f"{prefix}LOG:  duration: {ms:.3f} ms  plan:\n\t{_PLAN.format(t=t, i=i, ms=ms)}\n")
        write(f"{prefix}LOG:  duration: {ms * 1.05:.3f} ms  execute <unnamed>: {_EXTENDED.format(t=t)}\n")
        write(f"{prefix}DETAIL:  parameters: $1 = '{SECRET}{i}', $2 = '{i}'\n")
    t, i = rng.choice(TABLES), rng.randrange(1, 10**6)
    write(f"{prefix}LOG:  duration: {rng.lognormvariate(2, 1):.3f} ms  statement: {_MULTI.format(t=t, f=i / 100)}\n")
    write(f'{prefix}ERROR:  relation "nope_{t}" does not exist at character 15\n')
    write(f"{prefix}STATEMENT:  SELECT * FROM nope_{t} WHERE token = '{SECRET}'\n")


def generate_log(path: Path, size_bytes: int, seed: int = 0) -> int:
    """Write a stderr-format log of at least ``size_bytes`` bytes at ``path``; returns its size."""
    rng = random.Random(seed)
    clock = 1_795_000_000.0
    with path.open("w", encoding="utf-8", buffering=MB) as out:
        while out.tell() < size_bytes:
            for _ in range(50):
                _write_cycle(out, rng, clock)
                clock += 0.25
    return path.stat().st_size


@dataclass(frozen=True)
class Profile:
    returncode: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    stdout: str


def _high_water_kb(pid: int) -> int:
    """VmHWM of a live process: the peak resident set of its current program image."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0  # a zombie has no memory left to report


def profile_logs(*args: str) -> Profile:
    """Run ``pgpulse logs ARGS`` in a subprocess: exit code, wall and CPU time, peak RSS, and what it printed.

    The peak is the child's own VmHWM, polled until it exits. ``ru_maxrss`` from ``wait4`` or
    ``getrusage(RUSAGE_CHILDREN)`` would not do: Linux carries the *parent's* high-water mark into the child at
    ``exec`` (subprocess forks with ``vfork``), so a test process that once held 250 MB would make every child
    look that big."""
    with tempfile.TemporaryFile("w+") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgpulse.cli", "logs", *args], stdout=sink, stderr=subprocess.DEVNULL
        )
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _high_water_kb(proc.pid))
            time.sleep(0.02)  # polling interval: VmHWM only grows, so a late read loses nothing but the last 20 ms
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        sink.seek(0)
        return Profile(proc.returncode, seconds, usage.ru_utime + usage.ru_stime, peak_kb / 1024, sink.read())


def measure(log: Path, *extra: str) -> Run:
    """``pgpulse logs`` on ``log`` (JSON output, discarded): size, wall time, MB/s, CPU time and peak RSS."""
    run = profile_logs(str(log), "--format", "json", *extra)
    size_mb = log.stat().st_size / MB
    return Run(
        round(size_mb, 1),
        round(run.seconds, 2),
        round(size_mb / run.seconds, 1),
        round(run.cpu_seconds, 2),
        round(run.peak_rss_mb, 1),
        run.returncode,
    )


def _markdown(runs: list[Run]) -> str:
    lines = [
        "| log size (MB) | wall time (s) | MB/s | CPU time (s) | MB per CPU second | peak RSS (MB) | exit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.size_mb} | {r.seconds} | {r.mb_per_s} | {r.cpu_seconds} | {r.size_mb / max(r.cpu_seconds, 0.01):.1f} "
        f"| {r.peak_rss_mb} | {r.returncode} |"
        for r in runs
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgpulse.bench.logs_throughput", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES_MB)), help="log sizes in MB")
    parser.add_argument("--out", type=Path, default=None, help="a new folder for the results (default: a temp one)")
    args = parser.parse_args(argv)
    try:
        sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes takes numbers of megabytes separated by commas, not {args.sizes!r}")
    if not sizes or any(s <= 0 for s in sizes):
        parser.error("--sizes takes positive numbers of megabytes")
    if args.out is not None and args.out.exists():
        parser.error(f"{args.out} exists: give a new folder, results are never written over earlier ones")
    out = args.out or Path(tempfile.mkdtemp(prefix="pgpulse-logs-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="pgpulse-logs-") as scratch:
        for size in sizes:
            log = Path(scratch) / f"postgresql-{size:g}MB.log"
            generate_log(log, int(size * MB))
            run = measure(log)
            log.unlink()
            runs.append(run)
            print(
                f"{run.size_mb:>9} MB  {run.seconds:>8} s  {run.mb_per_s:>6} MB/s  CPU {run.cpu_seconds} s  "
                f"peak RSS {run.peak_rss_mb} MB",
                flush=True,
            )
    table = _markdown(runs)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in runs], indent=2) + "\n")
    (out / "results.md").write_text("# pgpulse logs: throughput and peak memory\n\n" + table + "\n")
    print(table)
    print(f"results: {out}")
    return 0 if all(r.returncode == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
