"""Soak: minutes of mixed load against CitizenApp (profiler on) in its own process, over loopback.

Pass criteria: no unexpected status, no traceback in the app's log, the app's RSS flat after warm-up (last
window vs the end of the first), p95 latency of the last window not worse than the first's. The RSS curve
and per-window latencies are written as CSV and JSON (``PGPULSE_SOAK_OUT``, default ./soak-results) and
printed. Excluded from the default run (marker ``soak``); ``scripts/soak.sh`` runs it, and
``PGPULSE_SOAK_SECONDS`` shortens it (default 600).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from pgpulse.demo.embedded import free_port

pytestmark = pytest.mark.soak

DURATION_S = float(os.environ.get("PGPULSE_SOAK_SECONDS", "600"))
OUT = Path(os.environ.get("PGPULSE_SOAK_OUT", "soak-results"))
CONCURRENCY = 8
SAMPLE_S = 5.0
WINDOW_S = min(60.0, DURATION_S / 5)  # "first minute" vs "last minute"; a fifth of shorter runs
RSS_GROWTH_MB = 25.0  # allowed drift of the app's RSS from the end of warm-up to the last window
P95_RATIO = 2.0  # last-window p95 may be at most this multiple of the first window's (+ 20 ms: noisy 2-core box)

APP = """
import os, uvicorn
from pgpulse.demo.app import create_app
from pgpulse.settings import Settings
settings = Settings(database_url=None, profiler_enabled=True, server_timing=True, metrics_route=True,
                    route_statement_timeout_ms=5000)
uvicorn.run(create_app(os.environ["SOAK_DATABASE_URL"], settings), host="127.0.0.1",
            port=int(os.environ["SOAK_PORT"]), log_level="warning", access_log=False)
"""


def _plan(seeded: Any) -> list[tuple[str, str, Any, set[int]]]:
    hot, show = seeded.hot_user_ids, seeded.showcase_user_id
    # Writes go to a user no read touches: otherwise the lazy endpoint's 1 + N queries grow with the run and
    # "p95 drifted" would measure our own data growth, not the app.
    writer = next(u for u in range(seeded.users, 0, -1) if u not in hot and u != show)
    return [
        ("GET", f"/users/{show}/posts?strategy=selectin", None, {200}),
        ("GET", f"/users/{show}/posts?strategy=single", None, {200}),
        ("GET", f"/users/{show}/posts?strategy=lazy", None, {200}),
        ("GET", f"/users/{hot[0]}/posts/published?limit=20", None, {200}),
        ("GET", f"/users/{hot[-1]}/posts/published", None, {200}),
        ("GET", f"/users/{show}", None, {200}),
        ("GET", "/users/987654321", None, {404}),
        ("POST", "/users", "user", {201}),
        ("POST", "/posts", {"user_id": writer, "title": "soak", "body": "x" * 200}, {201}),
        ("GET", "/health/db", None, {200}),
    ]


async def _wait_up(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the app process exited during start-up"
        try:
            if (await client.get("/health/db")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the app did not come up in 30 s")


async def test_soak_memory_flat_no_errors_p95_stable(citizen_db: Any, stuck_backends: Any) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = OUT / "app.log"
    env = {**os.environ, "SOAK_DATABASE_URL": citizen_db.url, "SOAK_PORT": str(port)}
    env.pop("DATABASE_URL", None)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-c", APP], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    app = psutil.Process(process.pid)
    plan = _plan(citizen_db.seeded)
    latencies: list[tuple[float, float]] = []  # (seconds since start, latency ms)
    statuses: Counter[str] = Counter()
    unexpected: list[str] = []
    samples: list[dict[str, float]] = []
    try:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            await _wait_up(client, process)
            began = time.monotonic()
            stop = began + DURATION_S
            counter = 0

            async def worker(offset: int) -> None:
                nonlocal counter
                i = offset
                while time.monotonic() < stop:
                    method, path, body, expected = plan[i % len(plan)]
                    i += 1
                    counter += 1
                    if body == "user":
                        body = {"name": "Soak", "email": f"soak-{os.getpid()}-{counter}-{offset}@example.org"}
                    t0 = time.monotonic()
                    response = await client.request(method, path, json=body)
                    latencies.append((t0 - began, (time.monotonic() - t0) * 1000))
                    statuses[f"{method} {path.split('?')[0]} {response.status_code}"] += 1
                    if response.status_code not in expected:
                        unexpected.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")

            async def sampler() -> None:
                while time.monotonic() < stop:
                    now = time.monotonic() - began
                    done = [ms for t, ms in latencies if t >= now - SAMPLE_S]
                    samples.append(
                        {
                            "t_s": round(now, 1),
                            "rss_mb": round(app.memory_info().rss / 2**20, 2),
                            "requests": len(latencies),
                            "p95_ms_last_5s": round(statistics.quantiles(done, n=20)[-1], 2) if len(done) > 20 else 0,
                        }
                    )
                    await asyncio.sleep(SAMPLE_S)

            await asyncio.gather(sampler(), *(worker(k * 3) for k in range(CONCURRENCY)))
            health = (await client.get("/health/db")).json()
    finally:
        process.terminate()
        process.wait(15)

    def p95(window: list[float]) -> float:
        return statistics.quantiles(window, n=20)[-1]

    first = [ms for t, ms in latencies if t < WINDOW_S]
    last = [ms for t, ms in latencies if t >= DURATION_S - WINDOW_S]
    warm = [s["rss_mb"] for s in samples if s["t_s"] <= WINDOW_S]
    tail = [s["rss_mb"] for s in samples if s["t_s"] >= DURATION_S - WINDOW_S]
    summary = {
        "duration_s": DURATION_S,
        "requests": len(latencies),
        "rps": round(len(latencies) / DURATION_S, 1),
        "statuses": dict(statuses),
        "unexpected": len(unexpected),
        "p95_first_ms": round(p95(first), 2),
        "p95_last_ms": round(p95(last), 2),
        "p50_first_ms": round(statistics.median(first), 2),
        "p50_last_ms": round(statistics.median(last), 2),
        "rss_warm_mb": warm[-1],
        "rss_last_median_mb": statistics.median(tail),
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "pool_after": health["pool"],
    }
    with (OUT / "soak_rss.csv").open("w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=list(samples[0]))
        table.writeheader()
        table.writerows(samples)
    (OUT / "soak.json").write_text(json.dumps({"summary": summary, "samples": samples}, indent=2))
    print(f"\nsoak results in {OUT.resolve()}\n  t_s  rss_mb  requests  p95_ms_last_5s")
    for s in samples:
        print(f"  {s['t_s']:>5} {s['rss_mb']:>7} {s['requests']:>9} {s['p95_ms_last_5s']:>8}")
    print(json.dumps(summary, indent=2))

    app_log = log_path.read_text(errors="replace")
    assert unexpected == [], unexpected[:5]
    assert "Traceback" not in app_log and "Exception in ASGI" not in app_log
    assert health["pool"]["checked_out"] == 0
    assert summary["rss_last_median_mb"] - summary["rss_warm_mb"] <= RSS_GROWTH_MB, summary
    assert summary["p95_last_ms"] <= summary["p95_first_ms"] * P95_RATIO + 20, summary
    assert await stuck_backends(citizen_db.url) == []
