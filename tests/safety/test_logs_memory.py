"""``pgpulse logs`` in a subprocess, its own peak RSS (VmHWM, polled): under 150 MB, and flat as the log grows
(the old reader kept every entry and every duration: about 4.4 MB of memory per MB of log)."""

from __future__ import annotations

import json
from pathlib import Path

from pgpulse.bench.logs_throughput import generate_log, measure, profile_logs

MB = 1024 * 1024
LIMIT_MB = 150
LINE = "2026-11-24 10:00:00.123 UTC [{pid}] app@shop LOG:  duration: {ms} ms  statement: {sql}\n"


def test_peak_rss_is_bounded_and_does_not_grow_with_the_log(tmp_path: Path) -> None:
    small, large = tmp_path / "small.log", tmp_path / "large.log"
    generate_log(small, 4 * MB, seed=1)
    generate_log(large, 16 * MB, seed=2)
    runs = [measure(small), measure(large)]
    assert [r.returncode for r in runs] == [0, 0]
    assert runs[0].peak_rss_mb < LIMIT_MB and runs[1].peak_rss_mb < LIMIT_MB, runs
    # Four times the log, the same memory: the old reader needed some 50 MB more for the 12 MB difference.
    assert runs[1].peak_rss_mb - runs[0].peak_rss_mb < 12, runs


def test_hostile_sizes_stay_bounded(tmp_path: Path) -> None:
    """One log with everything that used to blow memory up: a 10 MB nested expression (over 1 GB inside the
    parser), a 120 MB line, a 3 MB auto_explain plan, and 5,000 distinct query shapes."""
    path = tmp_path / "hostile.log"
    with path.open("w") as out:
        for i in range(5000):  # distinct shapes: more than twice the cap of kept shapes
            name = "".join(chr(97 + int(d)) for d in f"{i:04d}")
            out.write(LINE.format(pid=1, ms=i % 7 + 1, sql=f"SELECT * FROM tab_{name} WHERE id = {i}"))
        nested = "SELECT " + "(" * (5 * MB) + "1" + ")" * (5 * MB)
        out.write(LINE.format(pid=2, ms=9000, sql=nested))
        out.write(LINE.format(pid=3, ms=8000, sql="SELECT '" + "x" * (120 * MB)))  # one line, no quote closed
        out.write("2026-11-24 10:00:00 UTC [4] LOG:  duration: 7000 ms  plan:\n\tQuery Text: SELECT 1\n")
        out.write("\t  ->  Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n" * 60000)  # a 3 MB plan
        out.write(LINE.format(pid=5, ms=1, sql="SELECT 'the end'"))
    run = profile_logs(str(path), "--format", "json", "--top", "5")
    assert run.returncode == 0
    assert run.peak_rss_mb < LIMIT_MB, run.peak_rss_mb
    report = json.loads(run.stdout)
    assert report["timed_statements"] == 5004 and report["executions"] == 5004
    assert report["oversized"] == 3  # the nested expression, the long line, and the plan record over 1 MiB
    other = report["other_shapes"]
    assert isinstance(other, dict) and other["shapes"] >= 4000
    queries = report["queries"]
    assert isinstance(queries, list)
    assert [q["oversized"] for q in queries[:2]] == [True, True]  # 9 s and 8 s: the slowest, counted not parsed
    assert "x" * 300 not in json.dumps(report)
