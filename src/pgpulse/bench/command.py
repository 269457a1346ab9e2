"""``pgpulse bench``: every before/after claim measured side by side in one run."""

from __future__ import annotations

import typer

from pgpulse.bench.runner import PAIRS, run_cli


def bench(
    database_url: str | None = typer.Argument(
        None, help="PostgreSQL to run on (a scratch database is created and dropped). Default: a throw-away server."
    ),
    out: str = typer.Option("bench/results", "--out", help="Directory for latest.json, latest.md and plots."),
    only: str | None = typer.Option(None, "--only", help=f"Comma-separated pairs: {', '.join(PAIRS)}."),
    quick: bool = typer.Option(False, "--quick", help="CI smoke: small data, short rounds (< 3 min)."),
    compare: str | None = typer.Option(None, "--compare", help="An earlier latest.json: show how ratios moved."),
) -> None:
    """Benchmark each tuning practice as a before/after pair: table, ratios, targets and plots."""
    run_cli(database_url, only=only, quick=quick, out=out, compare=compare)
