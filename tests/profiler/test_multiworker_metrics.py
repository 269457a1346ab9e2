"""``/metrics`` under many workers sums every worker exactly (prometheus-client's multiprocess mode).

Real servers in child processes — ``uvicorn --workers N`` and gunicorn with uvicorn workers — serve CitizenApp
with ``PROMETHEUS_MULTIPROC_DIR`` set. The test first waits until every worker has answered (each response names
its process), then sends a known mix of requests at once, waits until the workers' files (read in the test,
which adds no request) hold the exact sums — a record is reported just after its response, and the histograms
reach the files within a second — and checks that ``/metrics``, whichever worker serves it, shows exactly those.
Expected figures come from the routes' documented query counts (``demo/loading.py``: lazy 2 + N for N
posts, selectin 3, single 1; ``GET /users/{id}`` one ``session.get``; ``/health/db`` one ``SELECT 1``) and one
pooled connection per request.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from tests.profiler.apps.worker_app import PID_HEADER

from pgpulse.demo.embedded import free_port
from pgpulse.demo.seed import SHOWCASE_POSTS

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
SETTLE_TIMEOUT = 20.0
GUNICORN_CONF = """\
from prometheus_client import multiprocess


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
"""

Series = tuple[str, frozenset[tuple[str, str]]]


def _command(server: str, workers: int, port: int, workdir: Path) -> list[str]:
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "--factory", "tests.profiler.apps.worker_app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
    conf = workdir / "gunicorn.conf.py"
    conf.write_text(GUNICORN_CONF)
    return [
        sys.executable, "-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", str(workers),
        "-b", f"127.0.0.1:{port}", "-c", str(conf), "--log-level", "warning", "--preload",
        "tests.profiler.apps.worker_app:create_app()",
    ]  # fmt: skip


@asynccontextmanager
async def _server(server: str, workers: int, database_url: str, metrics_dir: Path) -> AsyncIterator[int]:
    port = free_port()
    workdir = metrics_dir.parent  # no stray .env is read from the repository
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGPULSE_") and k != "DATABASE_URL"}
    env.update(
        PGPULSE_DATABASE_URL=database_url,
        PGPULSE_METRICS_ROUTE="true",
        PGPULSE_SLOW_QUERY_MS="600000",  # no "slow query" on a busy machine: its counter must stay absent
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    log = open(workdir / f"{server}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        _command(server, workers, port, workdir), env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        assert process.returncode is not None


async def _wait_for_every_worker(client: httpx.AsyncClient, workers: int) -> tuple[int, set[str]]:
    """Ask /health/db, a few at once, until ``workers`` distinct processes have answered; return how many
    health requests were answered (each one is a request the metrics count) and the processes seen."""
    answered, pids = 0, set()
    deadline = time.monotonic() + START_TIMEOUT
    while len(pids) < workers:
        assert time.monotonic() < deadline, f"only {len(pids)} of {workers} workers answered"
        results = await asyncio.gather(*(client.get("/health/db") for _ in range(workers * 2)), return_exceptions=True)
        for result in results:
            if isinstance(result, httpx.TransportError):
                continue  # not listening yet: no request reached a worker
            assert isinstance(result, httpx.Response), result
            assert result.status_code == 200, result.text
            answered += 1
            pids.add(result.headers[PID_HEADER])
        if len(pids) < workers:
            await asyncio.sleep(0.2)  # workers still importing: poll again
    return answered, pids


def _observed(text: str) -> dict[Series, float]:
    """Every count, sum of queries, counter and gauge pgpulse exports, by series."""
    out: dict[Series, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("pgpulse_"):
            continue
        for sample in family.samples:
            name = sample.name
            if name.endswith(("_bucket", "_created")) or (name.endswith("_sum") and "queries" not in name):
                continue  # buckets add up to _count; a sum of seconds is a measurement, not a count
            out[(name, frozenset(sample.labels.items()))] = sample.value
    return out


def _series(name: str, **labels: str) -> Series:
    return (name, frozenset(labels.items()))


@pytest.mark.parametrize(
    ("server", "workers"),
    [
        ("uvicorn", 2),  # spawned workers: each imports the app
        pytest.param("uvicorn", 4, marks=pytest.mark.soak),  # ≈ 25 s of start-up on a shared 2-core machine
        ("gunicorn", 2),  # --preload: the app is built once, then the workers fork (values reset per process)
        ("gunicorn", 4),
    ],
)
async def test_metrics_sum_every_worker_exactly(db, tmp_path: Path, server: str, workers: int) -> None:  # type: ignore[no-untyped-def]
    user = db.seeded.showcase_user_id
    posts_route, user_route = "/users/{user_id}/posts", "/users/{user_id}"
    # (path, route label, queries it runs, N+1 findings of Post.comments), each sent ROUNDS times at once
    mix = [
        (f"/users/{user}/posts?strategy=lazy", posts_route, 2 + SHOWCASE_POSTS, 1),
        (f"/users/{user}/posts?strategy=selectin", posts_route, 3, 0),
        (f"/users/{user}/posts?strategy=single", posts_route, 1, 0),
        (f"/users/{user}", user_route, 1, 0),
    ]
    rounds = 3
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection per request: any worker may take it
    async with (
        _server(server, workers, db.url, metrics_dir) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client,
    ):
        health, pids = await _wait_for_every_worker(client, workers)
        responses = await asyncio.gather(*(client.get(path) for path, *_ in mix for _ in range(rounds)))
        assert [r.status_code for r in responses] == [200] * len(responses)
        pids |= {r.headers[PID_HEADER] for r in responses}

        requests: Counter[str] = Counter({"/health/db": health})
        queries: Counter[str] = Counter({"/health/db": health})
        findings = 0
        for _, route, count, nplusone in mix:
            requests[route] += rounds
            queries[route] += rounds * count
            findings += rounds * nplusone

        def expect(observed: dict[Series, float]) -> dict[Series, float]:
            # Scrapes of /metrics are answered outside the profiler (MetricsEndpoint): they are not requests.
            expected: dict[Series, float] = {}
            for route, n in requests.items():
                expected[_series("pgpulse_db_queries_per_request_count", route=route, method="GET")] = n
                expected[_series("pgpulse_db_queries_per_request_sum", route=route, method="GET")] = queries[route]
                if queries[route]:
                    series = _series("pgpulse_db_query_duration_seconds_count", route=route, method="GET")
                    expected[series] = queries[route]
            nplusone = _series(
                "pgpulse_nplusone_findings_total", route=posts_route, method="GET", relationship="Post.comments"
            )
            expected[nplusone] = findings
            # One pooled connection per request that touched the database; none is left checked out.
            checkouts = sum(n for route, n in requests.items() if queries[route])
            expected[_series("pgpulse_db_pool_checkout_wait_seconds_count", pool="default")] = checkouts
            expected[_series("pgpulse_db_pool_checked_out", pool="default")] = 0
            # New connections: how many depends on how the requests overlapped in each worker, but every worker
            # opened at least one, and each was opened for a checkout.
            opened = _series("pgpulse_db_new_connections_total", pool="default")
            count = observed.get(opened, 0.0)
            expected[opened] = count if workers <= count <= checkouts else -1.0
            return expected

        def from_files() -> dict[Series, float]:
            """What any worker's /metrics would serve now, read here: reading adds no request of its own."""
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(metrics_dir))
            try:
                return _observed(generate_latest(registry).decode())
            except struct.error:  # a worker's file caught between its creation and its header: read again
                return {}

        async def settle() -> None:
            """Wait until the workers' files hold every request sent (a record is reported just after its
            response, and the histograms reach the files within a second)."""
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while (observed := from_files()) != expect(observed) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert observed == expect(observed)

        await settle()
        # Served by whichever worker takes it: the sums over all of them, exactly (its own record comes after).
        scrape = await client.get("/metrics")
        assert scrape.status_code == 200
        served = _observed(scrape.text)
        assert served == expect(served)
        last = scrape.headers[PID_HEADER]

        if server == "gunicorn":
            # A worker killed outright: gunicorn's child_exit hook (mark_process_dead) drops its live gauge file;
            # what it counted stays in the sums (its counter and histogram files remain). Not the worker that
            # answered the scrape: that scrape's own record may sit in its histogram buffer for up to a second
            # (the documented loss of a killed worker); everything before it is in the files, as settle() showed.
            victim = sorted(pids - {last})[0]
            gauge_file = metrics_dir / f"gauge_livesum_{victim}.db"
            assert gauge_file.exists()  # it checked connections out, so it has the pool gauge's file
            os.kill(int(victim), signal.SIGKILL)
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while gauge_file.exists():
                assert time.monotonic() < deadline, "child_exit did not mark the killed worker dead"
                await asyncio.sleep(0.05)
            await settle()
    assert len(pids) == workers  # every worker served, and the sums above are over all of them
    served = {p.name.split("_")[-1].removesuffix(".db") for p in metrics_dir.glob("histogram_*.db")}
    assert pids <= served, "each worker that answered wrote its own file"


def test_file_histogram_scrapes_as_prometheus_clients_own_in_multiprocess_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The multiprocess path of the query-duration histogram must read back, through MultiProcessCollector,
    exactly as a prometheus-client Histogram observed value by value in multiprocess mode."""
    from prometheus_client import CollectorRegistry, Histogram, values
    from prometheus_client.exposition import generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from pgpulse.profiler.metrics import FileRouteDurations

    buckets = (0.0005, 0.001, 0.01, 0.1, 1.0)
    observed = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.1, 0.5, 2.0, 30.0]  # on, between and beyond the bounds
    theirs_dir, ours_dir = tmp_path / "theirs", tmp_path / "ours"
    theirs_dir.mkdir()
    ours_dir.mkdir()

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(theirs_dir))  # read when a value's file is opened
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    reference = Histogram("q_seconds", "doc", ["route", "method"], buckets=buckets, registry=None)
    for route in ("/a", "/b/{id}"):
        for v in observed:
            reference.labels(route, "GET").observe(v)

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(ours_dir))
    ours = FileRouteDurations("q_seconds", "doc", buckets, value_class=values.MultiProcessValue(), flush_interval=3600)
    for route in ("/a", "/b/{id}"):
        ours.observe_many(route, observed[:4], "GET")
        ours.flush()  # twice: a flush adds what came since the last one, never all of it again
        ours.observe_many(route, observed[4:], "GET")
    ours.flush()

    def scrape(path: Path) -> list[str]:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(path))
        return generate_latest(registry).decode().splitlines()

    assert scrape(ours_dir) == scrape(theirs_dir)
    assert 'q_seconds_bucket{le="0.001",method="GET",route="/a"} 3.0' in scrape(ours_dir)
    assert 'q_seconds_count{method="GET",route="/b/{id}"} 9.0' in scrape(ours_dir)
