"""A real database with planted problems, a history store with a few snapshots of it, and the dashboard served
by real uvicorn on loopback: what every dashboard test looks at; and the headless Chromium (one per session)
that reads the pages.

Planted: an unused index, a duplicate index (a prefix of another), an invalid index (a failed CREATE UNIQUE
INDEX CONCURRENTLY), a table with 600 dead rows (autovacuum off for it), a session idle in transaction holding
a row lock and a second session waiting on it (a lock chain), and a table whose name is a ``<script>`` tag.
Statistics PostgreSQL flushes lazily are polled for, never slept on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pgpulse.dashboard import RequestRing, app
from pgpulse.doctor.check import Options
from pgpulse.history.snapshot import read_snapshot
from pgpulse.history.store import migrate, open_store
from pgpulse.history.targets import default_name
from pgpulse.profiler import instrument, profile

SCRIPT_TABLE = "<script>window.__pwned=1</script>"
SECRET_LITERAL = "sekrit-literal-42"
SECRET_IN_SESSION = "sekrit-literal-43"
SECRET_PARAMETER = "sekrit-param-44"
N_PLUS_ONE = 6

SCHEMA = [
    "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, created_at timestamptz NOT NULL"
    " DEFAULT now(), note text)",
    "INSERT INTO orders (customer_id, note) SELECT g % 100, 'n' || g FROM generate_series(1, 5000) g",
    "CREATE INDEX orders_created_unused ON orders (created_at)",
    "CREATE INDEX orders_customer_dup ON orders (customer_id)",
    "CREATE INDEX orders_customer_created ON orders (customer_id, created_at)",
    "CREATE TABLE dead_rows (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)",
    "INSERT INTO dead_rows SELECT g, 'v' FROM generate_series(1, 1000) g",
    "DELETE FROM dead_rows WHERE id <= 600",
    "CREATE TABLE dupvals (v int)",
    "INSERT INTO dupvals VALUES (1), (1)",
    "CREATE TABLE locked_rows (id int PRIMARY KEY, v int NOT NULL, note text)",
    "INSERT INTO locked_rows VALUES (1, 0, 'x')",
    f'CREATE TABLE "{SCRIPT_TABLE}" (id int)',
    # flush this session's counters first: ANALYZE's own live/dead counts are overwritten by a later flush
    "SELECT pg_stat_force_next_flush()",
    "ANALYZE",
]
WORKLOAD = [
    "SELECT count(*) FROM orders WHERE note LIKE '%7%'",
    f"SELECT count(*) FROM orders WHERE note = '{SECRET_LITERAL}'",
    f'SELECT count(*) FROM "{SCRIPT_TABLE}"',
]


@dataclass
class Site:
    base: str  # http://127.0.0.1:port
    database_url: str
    store_url: str
    holder_pid: int  # idle in transaction, holding the row lock
    waiter_pid: int  # waiting on holder_pid
    ring: RequestRing


async def _poll(conn: asyncpg.Connection, sql: str, expected: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := await conn.fetchval(sql)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{sql!r} is {value!r}, expected {expected!r}")
        await asyncio.sleep(0.05)


async def _workload(url: str, repeat: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in WORKLOAD:
            for _ in range(repeat):
                await conn.execute(statement)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


async def _snapshot(database_url: str, store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.record(default_name(database_url), await read_snapshot(database_url))
    finally:
        await store.close()


def _profiled_requests(database_url: str) -> RequestRing:
    """Two requests recorded by the real profiler on a real engine: one with an N+1 (the same query, once per
    id), one that runs a single query with a bound secret; the ring is fed as the profiler's callback would."""
    ring = RequestRing(size=10)
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    instrument(engine, log_parameters=True)  # the ring must drop parameters even when the profiler keeps them
    try:
        with engine.connect() as conn:
            with profile(route="/customers/{id}/orders") as record:
                for customer in range(N_PLUS_ONE):
                    conn.execute(sa.text("SELECT note FROM orders WHERE id = :c"), {"c": customer}).all()
            record.method = "GET"
            ring.add(record)
            with profile(route="/search") as record:
                conn.execute(sa.text("SELECT count(*) FROM orders WHERE note = :n"), {"n": SECRET_PARAMETER}).all()
            record.method = "GET"
            ring(record)
    finally:
        engine.dispose()
    return ring


def serve(asgi: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def site(make_database: Callable[..., Awaitable[str]]) -> AsyncIterator[Site]:
    database_url = await make_database("dash", extensions=("pg_stat_statements",))
    store_url = await make_database("dashstore")
    await asyncio.to_thread(migrate, store_url)
    conn = await asyncpg.connect(database_url)
    holder = await asyncpg.connect(database_url)
    waiter = await asyncpg.connect(database_url)
    waiting: asyncio.Task[str] | None = None
    try:
        for statement in SCHEMA:
            await conn.execute(statement)
        with pytest.raises(asyncpg.UniqueViolationError):  # leaves the invalid index behind, as in production
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dupvals_v_key ON dupvals (v)")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await _poll(conn, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'dead_rows'", 600)
        await _snapshot(database_url, store_url)
        for repeat in (3, 5, 2):
            await _workload(database_url, repeat)
            await _snapshot(database_url, store_url)
        await holder.execute("BEGIN")
        await holder.execute(f"SELECT * FROM locked_rows WHERE id = 1 AND note <> '{SECRET_IN_SESSION}' FOR UPDATE")
        waiting = asyncio.ensure_future(waiter.execute("UPDATE locked_rows SET v = v + 1 WHERE id = 1"))
        holder_pid, waiter_pid = holder.get_server_pid(), waiter.get_server_pid()
        await _poll(conn, f"SELECT pg_blocking_pids({waiter_pid}) = ARRAY[{holder_pid}]", True)

        ring = await asyncio.to_thread(_profiled_requests, database_url)
        asgi = app(
            database_url,
            store_url,
            requests_ring=ring,
            auth=lambda request: request.client is not None,
            pools=Options(app_workers=50, pool_size=5, max_overflow=0),  # 250 connections: more than the server has
        )
        server, thread, base = serve(asgi)
        try:
            yield Site(base, database_url, store_url, holder_pid, waiter_pid, ring)
        finally:
            server.should_exit = True
            await asyncio.to_thread(thread.join, 20)
    finally:
        await holder.close()  # ends its transaction: the waiter's UPDATE goes through
        if waiting is not None:
            await waiting
        await waiter.close()
        await conn.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save each page's screenshot: a temporary folder, or ``PGPULSE_SCREENSHOTS`` (the README's
    come from ``PGPULSE_SCREENSHOTS=docs/screenshots``)."""
    folder = os.environ.get("PGPULSE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return tmp_path_factory.mktemp("dashboard-screenshots")


CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
LAPTOP, PHONE = (1366, 900), (390, 844)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("Debian's chromium and chromium-driver are needed (scripts/test.sh installs them)")
    profile = tempfile.mkdtemp(prefix="pgpulse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={LAPTOP[0]},{LAPTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver: WebDriver, url: str, heading: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 20).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), heading))


def no_console_errors(driver: WebDriver) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def shoot(driver: WebDriver, folder: Path, name: str) -> None:
    assert driver.save_screenshot(str(folder / f"{name}.png"))


def body(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


@contextmanager
def staff_cookie(driver: WebDriver, base: str, name: str, token: str) -> Iterator[WebDriver]:
    """The browser with the staff cookie the auth check asks for (set on the app's own origin).

    Set through the DevTools protocol, without visiting the origin first: a visit answered 403 (and the favicon
    request Chromium then sends on its own, whenever it likes) would leave errors in the console log."""
    driver.execute_cdp_cmd("Network.setCookie", {"name": name, "value": token, "url": base + "/", "path": "/"})
    try:
        yield driver
    finally:
        driver.delete_all_cookies()


def cells(row: Any) -> list[str]:
    return [c.text for c in row.find_elements(By.TAG_NAME, "td")]
