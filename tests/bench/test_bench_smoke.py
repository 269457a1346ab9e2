"""``pgpulse bench --quick`` end to end on the test server: JSON, Markdown, plots, --compare, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from pgpulse.bench.report import compare_runs
from pgpulse.bench.stats import Round, percentile, summarize
from pgpulse.cli import app

SMOKE_PAIRS = ["composite", "overindex", "bloat", "profiler", "app", "workers"]


def test_quick_run_reports_every_requested_pair_with_sane_figures(smoke_run: tuple[dict[str, Any], Path]) -> None:
    out = smoke_run[1]
    data = json.loads((out / "latest.json").read_text())
    assert data["quick"] is True
    assert list(data["pairs"]) == SMOKE_PAIRS
    assert data["machine"]["cores"] >= 1 and data["machine"]["postgresql"].startswith("18")
    for name in SMOKE_PAIRS:
        pair = data["pairs"][name]
        assert len(pair["variants"]) >= 2, name
        for v in pair["variants"]:
            assert v["n"] > 0 and v["p50_ms"] > 0 and v["throughput"] > 0, (name, v["key"])
            assert v["p50_ms"] <= v["p95_ms"] <= v["p99_ms"], (name, v["key"])
            if "direct, max_connections" not in v["name"]:  # the over-committed variant's 503s are its point
                assert v["errors"] == 0, (name, v["key"])
        ratios = {k: r for k, r in pair["ratios"].items() if "failed responses" not in k}  # counts: 0 is the goal
        assert ratios and all(r > 0 for r in ratios.values()), name
    targets = {t["name"]: t for t in data["targets"]}
    assert any("composite" in n for n in targets) and any("listener" in n for n in targets)


def test_quick_run_measures_the_effects_it_claims(smoke_run: tuple[dict[str, Any], Path]) -> None:
    """Loose sanity, not timing targets: directions that hold on any machine, even a busy CI runner."""
    pairs = smoke_run[0]["pairs"]
    composite = {v["name"]: v for v in pairs["composite"]["variants"]}
    assert "Index Scan using bench_posts_composite" in composite["(user_id, status, created_at DESC)"]["extra"]["plan"]
    assert "Seq Scan" in composite["no secondary index"]["extra"]["plan"]
    assert pairs["overindex"]["ratios"]["47/3 indexes insert throughput"] < 1
    bloat = {v["name"]: v for v in pairs["bloat"]["variants"]}
    assert bloat["after 4 full-table UPDATEs"]["extra"]["total_bytes"] > bloat["fresh table"]["extra"]["total_bytes"]
    assert (
        bloat["after VACUUM FULL"]["extra"]["total_bytes"] < bloat["after 4 full-table UPDATEs"]["extra"]["total_bytes"]
    )
    assert bloat["after 4 full-table UPDATEs"]["extra"]["scan_pages"] > 2 * bloat["fresh table"]["extra"]["scan_pages"]
    stale = bloat["stale statistics after bulk load"]["extra"]
    assert stale["actual_rows"] > 10 * stale["estimated_rows"]
    assert pairs["profiler"]["facts"]["listener_us_per_query"] > 0
    assert {v["queries"] for v in pairs["profiler"]["variants"]} == {3}
    assert all(v["extra"]["server_cpu_ms"] > 0 for v in pairs["profiler"]["variants"])


def test_whole_app_pair_tunes_the_untuned_app_with_what_pgpulse_finds(smoke_run: tuple[dict[str, Any], Path]) -> None:
    """The shape of the whole-app pair, and the effects that hold on any machine (no timing)."""
    pair = smoke_run[0]["pairs"]["app"]
    steps = ["untuned", "+ eager loading", "+ QueuePool", "+ doctor: ANALYZE, autovacuum", "+ advise --apply"]
    assert [v["name"] for v in pair["variants"]] == steps
    for v in pair["variants"]:
        e = v["extra"]
        assert v["n"] >= 16 and v["p50_ms"] > 0, v  # at least one request per client, however busy the machine
        assert set(e["statuses"]) <= {"200", "201"} and e["statuses"].get("201", 0) > 0, (v["name"], e["statuses"])
        assert e["db_cpu_ms"] > 0 and e["blks_hit"] + e["blks_read"] > 0 and e["server_cpu_ms"] > 0, v["name"]
    by = {v["name"]: v["extra"] for v in pair["variants"]}
    # the profiler's N+1 on the lazy feed, and eager loading removing its queries
    assert any("Post.comments" in f for f in pair["facts"]["profiler_findings"])
    assert by["+ eager loading"]["queries_per_request"] < by["untuned"]["queries_per_request"]
    # the profiler's new-connection finding on the NullPool app, and the pool step it led to
    assert any(f.startswith("New connection per request") for f in pair["facts"]["profiler_connection_findings"])
    assert by["+ QueuePool"]["because"].startswith("profiler: New connection per request"), by["+ QueuePool"]
    # the doctor saw the statistics 1/16 of the rows old; its ANALYZE fixes were applied
    assert {"ANALYZE posts", "ANALYZE comments"} <= set(pair["facts"]["doctor_fixes"])
    # advise --apply created an index on comments (post_id): the lazy/selectin loads' only access path
    assert any("ON comments (post_id)" in a and "(created)" in a for a in pair["facts"]["advised"]), (
        pair["facts"]["advised"],
        pair["variants"][-1].get("note"),
    )
    assert by["+ advise --apply"]["blks_hit"] + by["+ advise --apply"]["blks_read"] < (
        by["+ doctor: ANALYZE, autovacuum"]["blks_hit"] + by["+ doctor: ANALYZE, autovacuum"]["blks_read"]
    )


def test_workers_pair_says_who_used_the_cpu_and_what_the_cores_allow(smoke_run: tuple[dict[str, Any], Path]) -> None:
    pair = smoke_run[0]["pairs"]["workers"]
    by = {v["name"]: v for v in pair["variants"]}
    for name in ("1 worker", "2 workers"):
        shares = by[name]["extra"]["cpu_ms_per_request"]
        # the app, PostgreSQL (the single route builds its JSON there) and the load generator all did work
        assert shares["app_ms"] > 0 and shares["database_ms"] > 0 and shares["loadgen_ms"] > 0, (name, shares)
        assert shares["other_ms"] >= 0
        assert by[name]["extra"]["statuses"] == {"200": by[name]["n"]}
    allowed = pair["ratios"]["2/1 workers throughput the cores allow"]
    cores = pair["facts"]["cores"]
    # two single-threaded workers can never be allowed more than 2x, nor less than 1x on one core or more
    assert 0.9 <= allowed <= 2.0, allowed  # ≥ ~1: one worker was served on the same cores (rounding aside)
    assert pair["ratios"]["2 workers: share of what the cores allow"] == pytest.approx(
        pair["ratios"]["2/1 workers throughput c=32"] / allowed, abs=0.002
    )
    assert cores == os.cpu_count()
    targets = [t for t in smoke_run[0]["targets"] if t["name"].startswith("2 workers")]
    assert len(targets) == 2
    note = next(n for n in pair["notes"] if n.startswith("CPU per request with 1 worker"))
    assert f"= {allowed:.2f}× one worker's" in note
    # the over-committed pair: the doctor predicts it, PgBouncer serves every request
    assert any("20 connections vs 9 usable" in f for f in pair["facts"]["doctor_predicted"])
    assert set(pair["facts"]["pgbouncer_statuses"]) == {"200"}
    assert set(pair["facts"]["direct_statuses"]) <= {"200", "503"}  # refused connections answer 503, nothing worse


def test_every_http_row_shows_its_tail_ratio(smoke_run: tuple[dict[str, Any], Path]) -> None:
    md = (smoke_run[1] / "latest.md").read_text()
    assert "| p99 ms | p99/p50 |" in md
    data = smoke_run[0]
    for v in data["pairs"]["app"]["variants"]:
        row = next(line for line in md.splitlines() if line.startswith(f"| app | {v['name']} |"))
        assert f"| {v['p99_ms'] / v['p50_ms']:.1f}× |" in row, row
    composite_rows = [line for line in md.splitlines() if line.startswith("| composite |")]
    assert composite_rows and all("×" not in line for line in composite_rows)  # in-process loops: no tail ratio


def test_markdown_and_plots_are_written(smoke_run: tuple[dict[str, Any], Path]) -> None:
    out = smoke_run[1]
    md = (out / "latest.md").read_text()
    assert "| Pair | Variant |" in md and "## Targets" in md
    # a quick run's small data cannot reach the full-scale targets: shown, never judged
    assert "not judged (quick run)" in md and "PASS" not in md and "MISS" not in md
    assert all(t["judged"] is False for t in smoke_run[0]["targets"])
    for name in SMOKE_PAIRS:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name}.png)" in md


async def test_scratch_database_is_dropped(smoke_run: tuple[dict[str, Any], Path], pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        left = await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgpulse_bench_%'")
    finally:
        await conn.close()
    assert left == 0


def test_compare_shows_ratio_changes(smoke_run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    new = smoke_run[0]
    old = json.loads(json.dumps(new))
    old["started_utc"] = "2026-01-01T00:00:00+00:00"
    old["pairs"]["overindex"]["ratios"]["47/3 indexes insert throughput"] = (
        new["pairs"]["overindex"]["ratios"]["47/3 indexes insert throughput"] * 2
    )
    table = compare_runs(old, new)
    assert "2026-01-01" in table
    assert "| overindex | 47/3 indexes insert throughput |" in table
    assert "-50.0%" in table
    assert "| composite | composite speed-up vs (user_id) p50 |" in table and "+0.0%" in table


def test_cli_compare_appends_the_comparison(
    smoke_run: tuple[dict[str, Any], Path], pg_url: str, tmp_path: Path
) -> None:
    old_file = tmp_path / "old.json"
    old_file.write_text((smoke_run[1] / "latest.json").read_text())
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["bench", pg_url, "--quick", "--only", "overindex", "--out", str(out), "--compare", str(old_file)]
    )
    assert result.exit_code == 0, result.output
    assert "Compared with the run of" in result.output
    assert "| overindex | 47/3 indexes insert throughput |" in (out / "latest.md").read_text()
    assert list(json.loads((out / "latest.json").read_text())["pairs"]) == ["overindex"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "bench", *args], capture_output=True, text=True, timeout=60
    )


def test_missing_compare_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _cli("--compare", str(tmp_path / "nope.json"), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_pair_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _cli("--only", "eager,warp", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "warp" in proc.stderr and "composite" in proc.stderr


def test_compare_file_that_is_not_a_result_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    proc = _cli("--compare", str(bogus), "--out", str(tmp_path))
    assert proc.returncode == 2 and "not a pgpulse bench result" in proc.stderr


def test_percentiles_and_spread() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile(sorted(float(i) for i in range(1, 101)), 95) == 95.0
    v = summarize("p", "v", [Round([1.0, 1.0, 3.0], 1.0), Round([2.0, 2.0, 2.0], 2.0)])
    assert v.p50_ms == 2.0 and v.p99_ms == 3.0
    assert v.round_p50_ms == [1.0, 2.0] and v.spread_pct == 66.7
    assert v.throughput == 2.25  # median of 3/1 and 3/2 requests per second
