"""``pgpulse demo`` and ``pgpulse serve``: the reference app on a real database, with timings.

The demo is the shortest path from ``pip install`` to seeing every lesson: a real PostgreSQL (embedded unless
``DATABASE_URL`` is set), the schema from Alembic, realistic skewed data, one planted instance of each
problem the doctor finds, and CitizenApp serving with the profiler on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pgpulse.db.databases import create_database
from pgpulse.db.engine import DatabaseURLError, redact
from pgpulse.db.resolve import DEMO_DATABASE, Target, resolve_or_fail
from pgpulse.errors import fail
from pgpulse.settings import Settings

console = Console(highlight=False, soft_wrap=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _open_target(url: str | None, keep_running: bool) -> Target:
    with console.status("starting PostgreSQL…" if not url else "connecting…"):
        target = resolve_or_fail(url, keep_running=keep_running)
    if target.server is not None:
        verb = "started" if target.owns_server else "reused the running server"
        console.print(
            f"[green]✓[/] embedded PostgreSQL {verb} in {target.server.startup_seconds:.2f} s "
            f"at {redact(target.url)} (data: {target.server.data_dir})"
        )
    return target


async def _ensure_database(target: Target) -> None:
    if target.server is None:
        return
    await create_database(target.server.url(), DEMO_DATABASE, if_missing=True)


async def _prepare(target: Target, users: int, posts: int, plant: bool) -> dict[str, Any]:
    from pgpulse.citizenapp.migrate import upgrade_async
    from pgpulse.citizenapp.seed import SeedSpec, seed

    await _ensure_database(target)
    began = time.perf_counter()
    await upgrade_async(target.url)
    console.print(f"[green]✓[/] migrated to head (Alembic) in {time.perf_counter() - began:.2f} s")

    spec = SeedSpec(users=users, posts=posts)
    with Progress(
        TextColumn("  loading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done, total=total)

        began = time.perf_counter()
        result = await seed(target.url, spec, progress=progress)
    took = time.perf_counter() - began
    console.print(
        f"[green]✓[/] seeded {result.users:,} users, {result.posts:,} posts, {result.comments:,} comments "
        f"with COPY in {took:.2f} s, then ANALYZE ({result.seconds['analyze'] * 1000:.0f} ms)"
    )
    if plant:
        from pgpulse.doctor.demo_problems import plant_problems

        began = time.perf_counter()
        await plant_problems(target.url)
        console.print(
            f"[green]✓[/] planted one instance of each problem for `pgpulse doctor` "
            f"in {time.perf_counter() - began:.2f} s"
        )
    return {"hot": result.hot_user_ids[0] if result.hot_user_ids else 1, "showcase": result.showcase_user_id}


class _QuietServer(uvicorn.Server):
    """uvicorn's Server, minus re-raising Ctrl-C after its graceful shutdown.

    uvicorn re-raises the captured SIGINT once it has stopped, which turns a clean Ctrl-C into a
    KeyboardInterrupt traceback; we still have PostgreSQL to stop afterwards, so the signal ends here.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def _serve(target: Target, port: int, host: str, profiler: bool) -> None:
    from pgpulse.citizenapp.app import create_app

    settings = Settings(database_url=target.url, server_timing=True, metrics_route=True, profiler_enabled=profiler)
    app = create_app(target.url, settings)
    console.print(f"\nCitizenApp on [bold]http://{host}:{port}[/]  (API docs: /docs, metrics: /metrics)  Ctrl-C stops")
    server = _QuietServer(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    asyncio.run(server.serve())


def demo(
    no_serve: bool = typer.Option(False, "--no-serve", help="Stop after migrating and seeding."),
    port: int = typer.Option(8000, min=1, max=65535, help="HTTP port for CitizenApp."),
    users: int = typer.Option(2_000, min=1, help="Users to generate."),
    posts: int = typer.Option(200_000, min=0, help="Posts to generate (skewed: a few hot users)."),
    no_problems: bool = typer.Option(False, "--no-problems", help="Do not plant the doctor's demo problems."),
    database_url: str | None = typer.Option(
        None, "--database-url", envvar="DATABASE_URL", help="Use this server instead of the embedded one."
    ),
) -> None:
    """Start PostgreSQL (embedded unless DATABASE_URL), migrate, seed, and serve CitizenApp."""
    host = "127.0.0.1"
    if not no_serve and not _port_free(host, port):
        fail(f"port {port} is in use: pass --port with a free one, or --no-serve")
    began = time.perf_counter()
    target = _open_target(database_url, keep_running=False)
    try:
        try:
            ids = asyncio.run(_prepare(target, users, posts, plant=not no_problems))
        except (OSError, asyncpg.PostgresError, DatabaseURLError) as exc:
            fail(f"cannot prepare the demo database {redact(target.url)}: {str(exc).splitlines()[0]}")
        console.print(f"[green]✓[/] ready in {time.perf_counter() - began:.2f} s\n")
        base = f"http://{host}:{port}"
        console.print("Try:")
        showcase = ids["showcase"]
        for strategy in ("lazy", "selectin", "single"):
            console.print(f"  curl -si '{base}/users/{showcase}/posts?strategy={strategy}' | grep -i server-timing")
        console.print(f"  curl -s '{base}/users/{ids['hot']}/posts/published?limit=10'")
        console.print(f"  curl -s {base}/health/db")
        where = "" if target.server else " " + redact(target.url)
        console.print(f"  pgpulse doctor{where} --app-workers 4 --pool-size 10")
        console.print(f"  pgpulse advise{where} --table audit_events -v")
        if not no_serve:
            _serve(target, port, host, profiler=True)
    finally:
        target.close()
        if target.owns_server:
            console.print("[green]✓[/] PostgreSQL stopped")


def serve(
    port: int = typer.Option(8000, min=1, max=65535, help="HTTP port."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    database_url: str | None = typer.Option(None, "--database-url", envvar="DATABASE_URL"),
) -> None:
    """Serve CitizenApp on an existing database (DATABASE_URL or the embedded demo cluster)."""
    if not _port_free(host, port):
        fail(f"port {port} is in use: pass --port with a free one")
    target = _open_target(database_url, keep_running=False)
    try:
        _serve(target, port, host, profiler=True)
    finally:
        target.close()
