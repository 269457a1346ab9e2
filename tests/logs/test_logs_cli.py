"""``pgpulse logs`` as a user runs it: formats, ranking options, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "logs", *args], capture_output=True, text=True, timeout=60
    )


def test_json_output_ranks_by_the_requested_key(server_logs) -> None:  # type: ignore[no-untyped-def]
    proc = _run(str(server_logs.csv), "--format", "json", "--sort", "count", "--top", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["malformed"] == 0 and doc["timed_statements"] > 10
    assert [q["count"] for q in doc["queries"]] == [7, 5]
    assert "owner = $1 AND price > $2" in doc["queries"][0]["query"]


def test_min_duration_filters_fast_executions(server_logs) -> None:  # type: ignore[no-untyped-def]
    everything = json.loads(_run(str(server_logs.stderr), "-f", "json", "--top", "0").stdout)
    slowest = max(q["max_ms"] for q in everything["queries"])
    filtered = json.loads(_run(str(server_logs.stderr), "-f", "json", "--min-duration", str(slowest)).stdout)
    assert 1 <= len(filtered["queries"]) < len(everything["queries"])
    assert all(q["max_ms"] >= slowest for q in filtered["queries"])


def test_markdown_and_table_outputs(server_logs) -> None:  # type: ignore[no-untyped-def]
    md = _run(str(server_logs.json), "--format", "markdown")
    assert md.returncode == 0 and md.stdout.startswith("# pgpulse logs")
    assert "| # | count |" in md.stdout and "Seq Scan on items" in md.stdout  # auto_explain plan shown
    table = _run(str(server_logs.stderr))
    assert table.returncode == 0 and "p95 ms" in table.stdout


def test_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _run(str(tmp_path / "absent.log"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no such log file" in proc.stderr and "Traceback" not in proc.stderr


def test_truncated_gzip_is_one_line_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "cut.log.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00broken")
    proc = _run(str(broken))
    assert proc.returncode == 2 and "cannot read log" in proc.stderr and "Traceback" not in proc.stderr


def test_a_file_that_is_not_a_log_says_so(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("shopping list\nmilk\n")
    proc = _run(str(other))
    assert proc.returncode == 0
    assert "no log records found" in proc.stderr
