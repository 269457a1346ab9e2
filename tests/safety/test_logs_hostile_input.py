"""Hostile log files: each is read on correctly, counted as what it is, or refused in one line; never a traceback,
never a silently shortened report, never unbounded memory inside one record or one shape table."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from pgpulse.logs import Limits, aggregate, parse_text, read_logs
from pgpulse.logs.parse import STATEMENT_CAP

LOG = "2026-11-24 10:00:00.123 UTC [4242] app@shop LOG:  duration: {ms} ms  statement: {sql}\n"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "logs", *args], capture_output=True, text=True, timeout=120
    )


def _csv_record(sql: str, ms: str = "1.5", pid: int = 4242) -> str:
    message = f"duration: {ms} ms  statement: {sql}".replace('"', '""')
    return (
        f'2026-11-24 10:00:00.123 UTC,"app","shop",{pid},"127.0.0.1:5",x,1,"SELECT",2026-11-24 10:00:00 UTC,3/4,0,'
        f'LOG,00000,"{message}",,,,,,,,,"psql","client backend",,0\n'
    )


def test_a_csv_field_over_128_kib_is_counted_and_the_rest_of_the_file_is_read(tmp_path: Path) -> None:
    """Python's csv module refuses fields over 128 KiB; the old reader stopped there and lost every later row."""
    huge = "SELECT '" + "x" * (200 * 1024) + "'\nFROM t"  # 200 KiB, over two lines inside its quoted field
    rows = [_csv_record("SELECT * FROM a WHERE id = 1")] * 3 + [_csv_record(huge)]
    rows += [_csv_record("SELECT * FROM a WHERE id = 2")] * 3 + [_csv_record("SELECT 1 FROM b")]
    path = tmp_path / "big-field.csv"
    path.write_text("".join(rows))
    stream = read_logs([path])
    summary = aggregate(stream.entries)
    assert stream.timed == 8 and stream.malformed == 0 and stream.oversized == 1
    by_query = {s.query: s.count for s in summary.shapes if not s.oversized}
    assert by_query == {"SELECT * FROM a WHERE id = $1": 6, "SELECT $1 FROM b": 1}
    assert [s.count for s in summary.shapes if s.oversized] == [1]
    assert summary.oversized == 1 and summary.executions == 8


def test_a_statement_over_the_cap_is_counted_by_its_prefix_never_parsed() -> None:
    nested = "SELECT " + "(" * 40000 + "1" + ")" * 40000  # would take the parser's stack and memory
    assert len(nested) > STATEMENT_CAP
    text = LOG.format(ms="5", sql=nested) * 2 + LOG.format(ms="1", sql="SELECT 2")
    result = parse_text(text)
    assert [e.oversized for e in result.entries] == [True, True, False]
    assert all(len(e.statement) <= 1024 for e in result.entries)
    summary = aggregate(result.entries)
    oversized = [s for s in summary.shapes if s.oversized]
    assert len(oversized) == 1 and oversized[0].count == 2 and oversized[0].total == 10.0
    assert "oversized statement" in oversized[0].query


def test_corrupt_gzip_part_way_is_one_line_and_exit_2(tmp_path: Path) -> None:
    good = gzip.compress((LOG.format(ms="1", sql="SELECT 1") * 20000).encode())
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(good[: len(good) // 2])  # valid header, truncated stream
    flipped = tmp_path / "flipped.log.gz"
    flipped.write_bytes(good[:40] + bytes(b ^ 0xFF for b in good[40:200]) + good[200:])  # corrupt deflate data
    for path in (cut, flipped):
        proc = _run(str(path))
        assert proc.returncode == 2, proc.stdout
        assert proc.stderr.count("\n") == 1 and "cannot read log" in proc.stderr and path.name in proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_jsonlog_fields_of_unexpected_types_never_raise() -> None:
    good = {"error_severity": "LOG", "message": "duration: 2 ms  statement: SELECT 1", "pid": 7}
    lines = [
        {**good, "detail": 42},
        {**good, "detail": ["parameters: $1 = 'x'"]},
        {**good, "pid": "7"},
        {**good, "pid": 1.5},
        {**good, "pid": True},
        {**good, "timestamp": 12, "user": {"a": 1}, "dbname": None},
        {**good, "error_severity": {"LOG": 1}},  # not a LOG record: no entry
        {**good, "message": ["duration: 2 ms  statement: SELECT 1"]},  # malformed
        {**good, "message": None},  # malformed
        [1, 2, 3],  # malformed
        "just a string",  # malformed
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"message": "\\ud800 lone surrogate", "x": \n'
    result = parse_text(text, "jsonlog")
    assert len(result.entries) == 6
    assert result.malformed == 5
    assert [e.pid for e in result.entries] == [7, 7, None, None, None, 7]
    assert all(e.parameters is None for e in result.entries)


def test_durations_that_are_not_numbers_postgresql_writes_are_malformed(tmp_path: Path) -> None:
    path = tmp_path / "durations.log"
    path.write_text(
        LOG.format(ms="9" * 400, sql="SELECT 1")
        + LOG.format(ms="99999999999999", sql="SELECT 1")  # 3,000 years
        + LOG.format(ms="1e999", sql="SELECT 1")
        + LOG.format(ms="NaN", sql="SELECT 1")
        + LOG.format(ms="3.5", sql="SELECT 1")
    )
    proc = _run(str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "Infinity" not in proc.stdout and "NaN" not in proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["malformed"] == 4 and doc["timed_statements"] == 1
    assert [(q["count"], q["max_ms"]) for q in doc["queries"]] == [(1, 3.5)]


def test_a_directory_says_so(tmp_path: Path) -> None:
    proc = _run(str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "is a directory: pass the log files inside it" in proc.stderr


def test_a_device_is_refused_in_one_line() -> None:
    proc = _run("/dev/null")
    assert proc.returncode == 2 and "not a regular file or a FIFO" in proc.stderr and "Traceback" not in proc.stderr


def test_a_fifo_is_read_as_a_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "live.log"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as out:  # blocks until the reader opens the FIFO
            out.write(LOG.format(ms="4", sql="SELECT 1") * 3 + LOG.format(ms="1", sql="SELECT * FROM t WHERE a = 5"))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    proc = _run(str(fifo), "--format", "json")
    writer.join(timeout=30)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(q["query"], q["count"]) for q in doc["queries"]] == [("SELECT $1", 3), ("SELECT * FROM t WHERE a = $1", 1)]


def test_shapes_beyond_the_cap_are_summed_up_not_lost() -> None:
    heavy = [LOG.format(ms="100", sql=f"SELECT * FROM heavy_{chr(97 + i)} WHERE id = 1") for i in range(10)]
    light = [LOG.format(ms="1", sql=f"SELECT * FROM light_{chr(97 + i // 26)}{chr(97 + i % 26)}") for i in range(40)]
    result = parse_text("".join(heavy + light))
    summary = aggregate(result.entries, limits=Limits(max_shapes=10))
    assert sorted(s.query for s in summary.shapes) == sorted(
        f"SELECT * FROM heavy_{chr(97 + i)} WHERE id = $1" for i in range(10)
    )
    assert summary.other.count == 40 and summary.other.total == 40.0 and summary.other_shapes == 40
    assert summary.executions == 50


def test_a_plan_is_kept_only_up_to_its_cap() -> None:
    lines = "".join(f"\t  ->  Seq Scan on t{i}  (cost=0.00..1.00 rows=1 width=4)\n" for i in range(3000))
    text = f"2026-11-24 10:00:00 UTC [1] LOG:  duration: 3 ms  plan:\n\tQuery Text: SELECT 1\n{lines}"
    summary = aggregate(parse_text(text).entries, limits=Limits(max_plan_chars=4096))
    (stats,) = summary.shapes
    assert stats.plan is not None and len(stats.plan) <= 4096 + 40 and stats.plan.endswith("(plan cut at 4 KiB)")


def test_plans_waiting_for_their_statement_are_bounded_and_all_counted() -> None:
    text = "".join(
        f"2026-11-24 10:00:00 UTC [{pid}] LOG:  duration: 1 ms  plan:\n\tQuery Text: SELECT 1\n"
        "\tResult  (cost=0.00..0.01 rows=1 width=4)\n"
        for pid in range(10000)
    )
    summary = aggregate(parse_text(text).entries)
    assert summary.executions == 10000 and [s.count for s in summary.shapes] == [10000]


def test_a_long_hostile_prefix_is_read_in_linear_time() -> None:
    """The old user@database regex backtracked quadratically over a prefix: 60 KB of name characters took
    minutes per line."""
    text = ("a.b-c" * 12000 + " LOG:  duration: 1 ms  statement: SELECT 1\n") * 20
    started = time.monotonic()
    result = parse_text(text)
    assert time.monotonic() - started < 20
    assert len(result.entries) == 20 and result.entries[0].user is None


def test_rich_markup_in_a_query_is_printed_as_text(tmp_path: Path) -> None:
    path = tmp_path / "markup.log"
    path.write_text(LOG.format(ms="1", sql='SELECT "[/]", "[bold]x" FROM t'))
    proc = subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "logs", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert proc.returncode == 0, proc.stderr
    assert 'SELECT "[/]", "[bold]x" FROM t' in proc.stdout
