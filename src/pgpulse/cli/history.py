"""``pgpulse history``: snapshot, collect, mark, diff, migrate — the statistics over time, in a store of our own.

Every failure the user can fix is one line on stderr and exit code 2 (the library's StoreError, SnapshotError,
TargetsError and PolicyError through :mod:`pgpulse.cli.errors`); ``diff`` exits 1 when it finds a regression
(for a deploy pipeline) and 0 otherwise; ``collect --once`` exits 1 when a target could not be snapshotted.
Heavy imports (asyncpg, Alembic) happen inside the commands, so ``pgpulse --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from pgpulse.cli.errors import EXIT_FINDINGS, fail
from pgpulse.errors import one_line
from pgpulse.formats import Format, emit

if TYPE_CHECKING:
    from pgpulse.history.diff import DiffReport
    from pgpulse.history.store import Recorded

history_app = typer.Typer(
    name="history",
    help="Snapshots of the statistics over time, and the regressions between two points in time.",
    no_args_is_help=True,
)

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)

STORE_HELP = "postgresql://… of the history store (a database of its own; env PGPULSE_HISTORY_STORE)."
STORE_OPTION = typer.Option(None, "--store", envvar="PGPULSE_HISTORY_STORE", help=STORE_HELP)
TARGET_ARGUMENT = typer.Argument(
    None, help="postgresql://… to snapshot; default: $DATABASE_URL, else the embedded demo database."
)


def _require_store(store: str | None, target_url: str | None = None, store_in_target: bool = False) -> str:
    """The store URL, refusing to write into the audited database unless the user said so explicitly."""
    from pgpulse.history.targets import identity

    if store_in_target and target_url is not None and store is None:
        return target_url
    if not store:
        fail("no history store: pass --store postgresql://…/pgpulse_history (or set PGPULSE_HISTORY_STORE)")
    try:
        same = target_url is not None and identity(store) == identity(target_url)
    except ValueError as exc:
        fail(one_line(exc))
    if same and not store_in_target:
        fail("the store is the audited database itself: use another --store, or pass --store-in-target to allow it")
    return store


def _describe(recorded: Recorded) -> str:
    if recorded.first:
        counts = ", ".join(f"{n:,} {k}" for k, n in recorded.series.items())
        return f"{recorded.target}: first snapshot ({counts}); deltas start with the next one"
    points = ", ".join(f"{n:,} {k}" for k, n in recorded.points.items())
    epoch = f"; new epoch {recorded.epoch}: {', '.join(recorded.epoch_reasons)}" if recorded.epoch_reasons else ""
    return (
        f"{recorded.target}: snapshot {recorded.snapshot_id} at {recorded.taken_at:%Y-%m-%d %H:%M:%S} ({points}){epoch}"
    )


@history_app.command()
def migrate(store: str | None = STORE_OPTION) -> None:
    """Create or upgrade the store's schema (pgpulse_history) with the migrations pgpulse ships."""
    from pgpulse.history.store import StoreError
    from pgpulse.history.store import migrate as run_migrations

    url = _require_store(store)
    try:
        run_migrations(url)
    except StoreError as exc:
        fail(str(exc))
    except Exception as exc:  # Alembic/SQLAlchemy: a connection or privilege problem, shown as one line
        fail(f"migrating the store failed: {one_line(exc)}")
    _stderr.print("store schema pgpulse_history is up to date")


@history_app.command()
def snapshot(
    database_url: str | None = TARGET_ARGUMENT,
    store: str | None = STORE_OPTION,
    name: str | None = typer.Option(None, "--name", help="Target name in the store; default host:port/dbname."),
    store_in_target: bool = typer.Option(
        False, "--store-in-target", help="Allow the store to be the audited database itself (schema pgpulse_history)."
    ),
) -> None:
    """Take one snapshot of a database's statistics (read-only) and record it in the store."""
    from pgpulse.cli.target import resolve_or_fail
    from pgpulse.db.targets import Target
    from pgpulse.history.collect import snapshot_once
    from pgpulse.history.targets import default_name

    resolved = resolve_or_fail(database_url)
    try:
        store_url = _require_store(store, resolved.url, store_in_target)
        target = Target(name or default_name(resolved.url), resolved.url)
        recorded: Recorded = asyncio.run(snapshot_once(target, store_url))
    finally:
        resolved.close()
    _stderr.print(escape(_describe(recorded)))


@history_app.command()
def collect(
    database_url: str | None = TARGET_ARGUMENT,
    store: str | None = STORE_OPTION,
    every: str = typer.Option("5m", "--every", help="Interval between snapshots: 30s, 5m, 1h…"),
    targets: Path | None = typer.Option(
        None, "--targets", help="File of targets, one per line: URL, NAME URL or NAME = URL (the doctor's format)."
    ),
    once: bool = typer.Option(False, "--once", help="One round, then exit (for cron or a Kubernetes CronJob)."),
    retention: str = typer.Option(
        "raw:2d,1h:30d,1d:365d", "--retention", help="Downsampling levels: resolution:keep, finest first."
    ),
    name: str | None = typer.Option(None, "--name", help="Target name for a single URL."),
    store_in_target: bool = typer.Option(False, "--store-in-target", help="Allow the store to be the target."),
) -> None:
    """Snapshot one or many targets on a schedule, applying retention after each round (Ctrl-C stops cleanly)."""
    from pgpulse.db.targets import Target, TargetsError, read_targets
    from pgpulse.history.collect import snapshot_once
    from pgpulse.history.retention import Policy, PolicyError, parse_duration
    from pgpulse.history.targets import default_name

    try:
        interval = parse_duration(every)
        policy = Policy.parse(retention)
        if targets is not None:
            if database_url is not None:
                fail("give either a database URL or --targets FILE, not both")
            chosen = read_targets(targets, default_name=default_name)
        else:
            from pgpulse.cli.target import resolve_or_fail

            resolved = resolve_or_fail(database_url, keep_running=True)
            chosen = [Target(name or default_name(resolved.url), resolved.url)]
    except (PolicyError, TargetsError, ValueError) as exc:
        fail(one_line(exc))
    if interval < timedelta(seconds=1):
        fail("--every must be at least 1s")
    if store is None and store_in_target and len(chosen) > 1:
        fail("--store-in-target without --store works for one target only: give the shared store with --store")
    stores = {t.name: _require_store(store, t.url, store_in_target) for t in chosen}

    from pgpulse.sql import redact_text

    async def round_() -> int:
        failures = 0
        for t in chosen:
            try:
                _stderr.print(escape(_describe(await snapshot_once(t, stores[t.name], policy))))
            except Exception as exc:  # one target down must not stop the others, nor the loop
                failures += 1
                line = one_line(exc)
                _stderr.print(f"[bold red]error:[/] {escape(t.name)}: {escape(redact_text(line))}")
        return failures

    async def loop() -> int:
        while True:
            began = time.monotonic()
            failures = await round_()
            if once:
                return failures
            await asyncio.sleep(max(0.0, interval.total_seconds() - (time.monotonic() - began)))

    try:
        failures = asyncio.run(loop())
    except KeyboardInterrupt:
        _stderr.print("stopped")
        raise typer.Exit(0) from None
    raise typer.Exit(EXIT_FINDINGS if failures else 0)


@history_app.command()
def mark(
    label: str = typer.Argument(..., metavar="NAME", help="A name for this moment, e.g. deploy-123."),
    store: str | None = STORE_OPTION,
    target: str | None = typer.Option(None, "--target", help="Target name (default: the store's only target)."),
    at: str | None = typer.Option(None, "--at", help="ISO time (UTC if no offset); default: the last snapshot."),
) -> None:
    """Name a moment (e.g. a deploy) to diff against later with `pgpulse history diff --baseline NAME`."""
    from pgpulse.history.store import open_store

    url = _require_store(store)
    moment = _parse_time(at) if at else None

    async def run() -> datetime:
        s = await open_store(url, auto_migrate=False)
        try:
            return await s.set_mark(target, label, moment)
        finally:
            await s.close()

    when: datetime = asyncio.run(run())
    _stderr.print(f"mark {label!r} at {when.isoformat()}")


def _parse_time(text: str) -> datetime:
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"not a time: {text!r} (expected ISO 8601, e.g. 2026-11-25T09:30 or 2026-11-25T09:30+01:00)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _windows(
    since: str | None, between: tuple[str, str] | None, baseline: str | None, baseline_window: str | None
) -> tuple[datetime | None, datetime, timedelta | None]:
    """(split or None when a mark gives it, end, baseline length); exactly one way must be given."""
    from pgpulse.history.retention import parse_duration

    chosen = [m for m, v in (("--since", since), ("--between", between), ("--baseline", baseline)) if v]
    if len(chosen) != 1:
        fail("say which windows to compare: exactly one of --since 2h, --between T1 T2, --baseline NAME")
    try:
        length = parse_duration(baseline_window) if baseline_window else None
        now = datetime.now(UTC)
        if since:
            return now - parse_duration(since), now, length
    except ValueError as exc:
        fail(str(exc))
    if between:
        start, end = _parse_time(between[0]), _parse_time(between[1])
        if end <= start:
            fail("--between T1 T2 needs T1 before T2")
        return start, end, length
    return None, now, length


@history_app.command()
def diff(
    store: str | None = STORE_OPTION,
    target: str | None = typer.Option(None, "--target", help="Target name (default: the store's only target)."),
    since: str | None = typer.Option(None, "--since", help="Current window: the last 2h, 1d…"),
    between: tuple[str, str] | None = typer.Option(None, "--between", help="Current window: T1 T2 (ISO times)."),
    baseline: str | None = typer.Option(None, "--baseline", help="Current window: since the mark NAME."),
    baseline_window: str | None = typer.Option(
        None, "--baseline-window", help="Length of the baseline before the split (default: as long as the current)."
    ),
    format: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    slower_ratio: float = typer.Option(2.0, min=1.0, help="Report a query whose mean time rose at least this much."),
    min_calls: int = typer.Option(100, min=1, help="…with at least this many calls in both windows."),
    top: int = typer.Option(10, min=1, help="Report new queries among the top N by total time."),
    grow_pct: float = typer.Option(25.0, min=0.0, help="Report a table/index that grew at least this much (%)…"),
    grow_min_mb: float = typer.Option(100.0, min=0.0, help="…and by at least this many MiB."),
    dead_min: int = typer.Option(10_000, min=1, help="Report dead tuples that rose by at least this many…"),
    dead_pct: float = typer.Option(20.0, min=0.0, help="…and are at least this share of the table (%)."),
) -> None:
    """Regressions between a baseline window and the current one; exit 1 when any is found (for CI/CD)."""
    from pgpulse.history.diff import Thresholds, diff_in_store

    url = _require_store(store)
    split, end, length = _windows(since, between, baseline, baseline_window)
    thresholds = Thresholds(
        slower_ratio=slower_ratio,
        min_calls=min_calls,
        top_n=top,
        grow_ratio=1 + grow_pct / 100,
        grow_min_bytes=int(grow_min_mb * 1024 * 1024),
        dead_min=dead_min,
        dead_share=dead_pct / 100,
    )
    report: DiffReport = asyncio.run(
        diff_in_store(url, target, end, thresholds, split=split, mark=baseline, length=length)
    )
    emit(
        format,
        lambda: _render("json", report),
        lambda: _render("markdown", report),
        lambda console: _render_table(report, console),
    )
    raise typer.Exit(EXIT_FINDINGS if report.regressions else 0)


def _render(kind: str, report: DiffReport) -> str:
    from pgpulse.history.report import render_json, render_markdown

    return render_json(report) if kind == "json" else render_markdown(report)


def _render_table(report: DiffReport, console: Console) -> None:
    from pgpulse.history.report import render_table

    render_table(report, console)
