"""``pgpulse demo`` and ``pgpulse serve``: the reference app on a real database, with timings.

The demo is the shortest path from ``pip install`` to seeing every lesson: a real PostgreSQL (embedded unless
``DATABASE_URL`` is set), the schema from Alembic, realistic skewed data, one planted instance of each
problem the doctor finds, and CitizenApp serving with the profiler on.

The demo writes only to a database it created and marked (``pgpulse.demo.database``): given a
``DATABASE_URL``, it creates the database the URL names (``pgpulse_demo`` if none) or reuses it when it carries
the marker, and refuses any other existing database before writing anything. Its data persist between runs;
``--reseed`` replaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from pgpulse.cli.errors import fail
from pgpulse.errors import UserError, one_line
from pgpulse.extras import require_extra

if TYPE_CHECKING:  # imported where used: `pgpulse --help` need not load the drivers
    from pgpulse.cli.target import Target
    from pgpulse.demo.database import DemoDatabase

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
    from pgpulse.cli.target import resolve_or_fail
    from pgpulse.db.urls import redact

    with console.status("starting PostgreSQL…" if not url else "connecting…"):
        target = resolve_or_fail(url, keep_running=keep_running)
    if target.server is not None:
        verb = "started" if target.owns_server else "reused the running server"
        console.print(
            f"[green]✓[/] embedded PostgreSQL {verb} in {target.server.startup_seconds:.2f} s "
            f"at {redact(target.url)} (data: {target.server.data_dir})"
        )
    return target


@dataclass(frozen=True)
class SeedChoice:
    users: int
    posts: int
    plant: bool
    reseed: bool
    adopt_empty: bool


async def _prepare(target: Target, choice: SeedChoice) -> DemoDatabase:
    """Open (or create) the marked demo database, migrate it, and seed it unless its data are already there."""
    from pgpulse.demo.database import open_demo_database
    from pgpulse.demo.migrate import upgrade_async

    db = await open_demo_database(target.url, adopt_empty=choice.adopt_empty)
    console.print(f"[green]✓[/] {'created' if db.created else 'opened'} the demo database {db.name} (demo marker set)")
    began = time.perf_counter()
    await upgrade_async(db.url)
    console.print(f"[green]✓[/] migrated to head (Alembic) in {time.perf_counter() - began:.2f} s")
    if db.seeded_at is not None and not choice.reseed:
        console.print(
            f"[green]✓[/] kept the demo data seeded {db.seeded_at:%Y-%m-%d %H:%M %Z} "
            "(pass --reseed to load fresh data with --users/--posts)"
        )
        return db
    return await _seed(db, choice)


async def _seed(db: DemoDatabase, choice: SeedChoice) -> DemoDatabase:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pgpulse.demo.database import forget_seeded, record_seeded
    from pgpulse.demo.seed import SeedSpec, seed

    await forget_seeded(db.url)  # an interrupted (re-)seed is redone by the next run
    spec = SeedSpec(users=choice.users, posts=choice.posts)
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
        result = await seed(db.url, spec, progress=progress)
    took = time.perf_counter() - began
    console.print(
        f"[green]✓[/] seeded {result.users:,} users, {result.posts:,} posts, {result.comments:,} comments "
        f"with COPY in {took:.2f} s, then ANALYZE ({result.seconds['analyze'] * 1000:.0f} ms)"
    )
    if choice.plant:
        from pgpulse.demo.problems import plant_problems

        began = time.perf_counter()
        await plant_problems(db.url)
        console.print(
            f"[green]✓[/] planted one instance of each problem for `pgpulse doctor` "
            f"in {time.perf_counter() - began:.2f} s"
        )
    hot = result.hot_user_ids[0] if result.hot_user_ids else None
    await record_seeded(db.url, hot, result.showcase_user_id)
    return replace(db, hot_user_id=hot, showcase_user_id=result.showcase_user_id)


def _serve(url: str, port: int, host: str, profiler: bool) -> None:
    import uvicorn  # the demo extra: imported only when CitizenApp is served

    from pgpulse.demo.app import create_app
    from pgpulse.settings import Settings

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

    settings = Settings(database_url=url, server_timing=True, metrics_route=True, profiler_enabled=profiler)
    app = create_app(url, settings)
    console.print(f"\nCitizenApp on [bold]http://{host}:{port}[/]  (API docs: /docs, metrics: /metrics)  Ctrl-C stops")
    server = _QuietServer(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    asyncio.run(server.serve())


def _cannot(action: str, url: str, exc: BaseException) -> NoReturn:
    """One line for any failure at the command's edge: a demo must never end in a traceback."""
    import asyncpg

    from pgpulse.db.urls import DatabaseURLError, redact

    if isinstance(exc, UserError):
        fail(str(exc))
    reason = one_line(exc)
    if not isinstance(exc, (OSError, asyncpg.PostgresError, DatabaseURLError)):
        reason = f"{type(exc).__name__}: {reason}"
    fail(f"cannot {action} {redact(url)}: {reason}")


def demo(
    no_serve: bool = typer.Option(False, "--no-serve", help="Stop after migrating and seeding."),
    port: int = typer.Option(8000, min=1, max=65535, help="HTTP port for CitizenApp."),
    users: int = typer.Option(2_000, min=1, help="Users to generate (when seeding)."),
    posts: int = typer.Option(200_000, min=0, help="Posts to generate (skewed: a few hot users; when seeding)."),
    no_problems: bool = typer.Option(False, "--no-problems", help="Do not plant the doctor's demo problems."),
    reseed: bool = typer.Option(False, "--reseed", help="Replace the demo data kept from an earlier run."),
    adopt_empty: bool = typer.Option(
        False, "--adopt-empty", help="Use (and mark) the URL's existing database if it is empty of objects."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="DATABASE_URL",
        help="A server for the demo: its database (default pgpulse_demo) is created and marked by the demo; "
        "an existing database without the demo marker is refused.",
    ),
) -> None:
    """Start PostgreSQL (embedded unless DATABASE_URL), migrate, seed once, and serve CitizenApp."""
    require_extra("demo", "pgpulse demo")  # MissingExtraError: one line through cli.errors
    from pgpulse.db.urls import redact

    host = "127.0.0.1"
    if not no_serve and not _port_free(host, port):
        fail(f"port {port} is in use: pass --port with a free one, or --no-serve")
    began = time.perf_counter()
    target = _open_target(database_url, keep_running=False)
    choice = SeedChoice(users=users, posts=posts, plant=not no_problems, reseed=reseed, adopt_empty=adopt_empty)
    try:
        try:
            db = asyncio.run(_prepare(target, choice))
        except Exception as exc:  # the command's edge: one line, whatever went wrong
            _cannot("prepare the demo database", target.url, exc)
        console.print(f"[green]✓[/] ready in {time.perf_counter() - began:.2f} s\n")
        base = f"http://{host}:{port}"
        console.print("Try:")
        if db.showcase_user_id is not None:
            for strategy in ("lazy", "selectin", "single"):
                console.print(
                    f"  curl -si '{base}/users/{db.showcase_user_id}/posts?strategy={strategy}' | grep -i server-timing"
                )
        console.print(f"  curl -s '{base}/users/{db.hot_user_id or 1}/posts/published?limit=10'")
        console.print(f"  curl -s {base}/health/db")
        where = "" if target.server else " " + redact(db.url)
        console.print(f"  pgpulse doctor{where} --app-workers 4 --pool-size 10")
        console.print(f"  pgpulse advise{where} --table audit_events -v")
        if not no_serve:
            _serve(db.url, port, host, profiler=True)
    finally:
        target.close()
        if target.owns_server:
            console.print("[green]✓[/] PostgreSQL stopped")


async def _check_marked(url: str) -> str:
    import asyncpg

    from pgpulse.demo.database import demo_url, require_marker

    dsn, _ = demo_url(url)
    conn = await asyncpg.connect(dsn)
    try:
        await require_marker(conn)
    finally:
        await conn.close()
    return dsn


def serve(
    port: int = typer.Option(8000, min=1, max=65535, help="HTTP port."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    database_url: str | None = typer.Option(None, "--database-url", envvar="DATABASE_URL"),
) -> None:
    """Serve CitizenApp on the demo database (DATABASE_URL or the embedded demo cluster); it must carry the
    demo marker, since CitizenApp writes to users, posts and comments."""
    require_extra("demo", "pgpulse serve")
    if not _port_free(host, port):
        fail(f"port {port} is in use: pass --port with a free one")
    target = _open_target(database_url, keep_running=False)
    try:
        try:
            url = asyncio.run(_check_marked(target.url))
        except Exception as exc:  # the command's edge: one line, whatever went wrong
            _cannot("serve CitizenApp on", target.url, exc)
        _serve(url, port, host, profiler=True)
    finally:
        target.close()
