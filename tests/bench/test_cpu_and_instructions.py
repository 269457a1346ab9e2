"""The CPU accounting behind the workers pair and the instruction counts behind the profiler pair, on real
processes: a child that burns CPU, Valgrind counting a real Python program."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgpulse.bench import cpu, instructions
from pgpulse.bench.loadgen import LoadResult
from pgpulse.bench.rounds import cpu_shares
from pgpulse.bench.stats import Round

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\nprint('done', flush=True)\nimport sys; sys.stdin.read()"  # noqa: E501


def _burning_parent(tmp_path: Path, seconds: float) -> subprocess.Popen[str]:
    """A parent that starts one child burning ``seconds`` of CPU, both left alive until stdin closes."""
    child = tmp_path / "child.py"
    child.write_text(BURN.format(seconds=seconds))
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import subprocess, sys\n"
        f"c = subprocess.Popen([sys.executable, {str(child)!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)\n"  # noqa: E501
        "print(c.stdout.readline().strip(), flush=True)\n"
        "sys.stdin.read(); c.stdin.close(); c.wait()\n"
    )
    return subprocess.Popen([sys.executable, str(parent)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_process_seconds_counts_the_children_only_when_asked(tmp_path: Path) -> None:
    proc = _burning_parent(tmp_path, 0.6)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "done"  # the child has burnt its CPU and is still alive
        alone = cpu.process_seconds(proc.pid)
        family = cpu.process_seconds(proc.pid, children=True)
        assert alone is not None and family is not None
        assert alone < 0.5  # the parent only waited
        assert family - alone >= 0.55  # the child's 0.6 s (its start-up adds a little)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    assert cpu.process_seconds(proc.pid) is None  # gone: no figure rather than a wrong one


def test_machine_busy_seconds_grows_with_work_done_here() -> None:
    before = cpu.machine_busy_seconds()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = cpu.machine_busy_seconds()
    assert before is not None and after is not None
    assert after - before >= 0.25  # our own 0.3 s, at the clock tick's resolution


def test_the_ceiling_is_one_core_per_worker_or_the_cores_shared_with_everything_else() -> None:
    # 1 ms of app CPU per request, nothing else: each worker is one core's 1,000 req/s.
    assert cpu.ceiling(cpu.Shares(1.0, 0.0, 0.0, 0.0), 2, 2) == pytest.approx(2000.0)
    # Half a millisecond more per request elsewhere: 2 cores / 1.5 ms = 1,333 req/s, 1.33x one worker.
    assert cpu.ceiling(cpu.Shares(1.0, 0.3, 0.1, 0.1), 2, 2) == pytest.approx(2000 / 1.5)
    # With the rest at 17.6 % of the app's CPU, 1.7x is just possible (the note's rule).
    assert cpu.ceiling(cpu.Shares(1.0, 0.176, 0.0, 0.0), 2, 2) / 1000.0 == pytest.approx(1.7, abs=0.001)
    assert cpu.ceiling(cpu.Shares(1.0, 0.0, 0.0, 0.0), 2, 4) == pytest.approx(2000.0)  # the GIL, not the cores
    assert cpu.ceiling(cpu.Shares(0.0, 1.0, 0.0, 0.0), 2, 2) == 0.0


def _result(total: int, app: float | None, db: float, lg: float, busy: float) -> LoadResult:
    r = LoadResult(Round([1.0] * total, 1.0), None, {"200": total}, total, server_cpu_s=app)
    r.db_cpu_s, r.loadgen_cpu_s, r.machine_busy_s = db, lg, busy
    return r


def test_cpu_shares_are_per_response_and_the_rest_is_what_the_machine_did_besides() -> None:
    shares = cpu_shares([_result(1000, 1.0, 0.4, 0.1, 1.7), _result(1000, 1.0, 0.4, 0.1, 1.6)])
    assert shares is not None
    assert shares.app_ms == pytest.approx(1.0)
    assert shares.database_ms == pytest.approx(0.4)
    assert shares.loadgen_ms == pytest.approx(0.1)
    assert shares.other_ms == pytest.approx(0.15)
    # one unmeasured share (a database on another machine): no shares at all, not a partial sum
    assert cpu_shares([_result(1000, None, 0.4, 0.1, 1.7)]) is None


needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None and not os.environ.get("CI"),
    reason="needs valgrind (Debian: apt-get install valgrind)",
)


def _loop(n: int) -> list[str]:
    return [sys.executable, "-S", "-c", f"for i in range({n}): pass"]


@needs_valgrind
def test_callgrind_counts_repeat_exactly_and_grow_with_the_work() -> None:
    async def counts() -> list[int]:
        return list(
            await asyncio.gather(
                instructions.count(_loop(100_000)),
                instructions.count(_loop(100_000)),
                instructions.count(_loop(300_000)),
            )
        )

    first, again, triple = asyncio.run(counts())
    assert abs(first - again) <= first * 0.001  # the machine's load does not move the count
    per_iteration = (triple - first) / 200_000
    assert 5 <= per_iteration <= 500  # a few bytecodes per iteration, each tens of instructions


@needs_valgrind
def test_a_failing_counted_program_says_so_in_one_line() -> None:
    with pytest.raises(RuntimeError, match=r"the counted program failed: ZeroDivisionError"):
        asyncio.run(instructions.count([sys.executable, "-S", "-c", "1 / 0"]))


def test_without_valgrind_the_count_is_refused_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(instructions.NoValgrind, match="apt-get install valgrind"):
        asyncio.run(instructions.count(_loop(10)))


def test_collected_reads_callgrinds_summary_line_and_nothing_else() -> None:
    assert instructions.collected("==12== Events    : Ir\n==12== Collected : 123456\n==12==\n") == 123456
    with pytest.raises(RuntimeError, match="no instruction count"):
        instructions.collected("==12== Events    : Ir\nsomething else\n")
