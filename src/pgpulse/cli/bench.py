"""``pgpulse bench``: every before/after claim measured side by side in one run."""

from __future__ import annotations

import typer

from pgpulse.cli.errors import EXIT_FINDINGS, fail

PAIR_NAMES = ("eager", "composite", "overindex", "pooling", "bloat", "profiler", "app", "workers")  # runner.PAIRS


def bench(
    database_url: str | None = typer.Argument(
        None, help="PostgreSQL to run on (a scratch database is created and dropped). Default: a throw-away server."
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        help="Directory for latest.json, latest.md and plots (default: a new pgpulse-bench-<time> folder here; "
        "the committed bench/results is written only when named).",
    ),
    only: str | None = typer.Option(None, "--only", help=f"Comma-separated pairs: {', '.join(PAIR_NAMES)}."),
    quick: bool = typer.Option(False, "--quick", help="CI smoke: small data, short rounds (< 3 min)."),
    compare: str | None = typer.Option(None, "--compare", help="An earlier latest.json: show how ratios moved."),
) -> None:
    """Benchmark each tuning practice as a before/after pair: table, ratios, targets and plots."""
    from pgpulse.extras import require_extra

    require_extra("bench", "pgpulse bench")  # MissingExtraError: one line through cli.errors
    from pgpulse.bench.runner import run_cli  # the demo's app server and matplotlib: only when benchmarking

    failed, report = run_cli(database_url, only=only, quick=quick, out=out, compare=compare)
    if failed:
        fail(f"pair(s) {', '.join(failed)} failed: see the log above and {report}", code=EXIT_FINDINGS)
