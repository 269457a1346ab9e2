"""Where ``pgpulse bench`` writes: a fresh folder unless ``--out`` names one, never the committed results."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgpulse.bench.runner import PAIRS, fresh_out_dir
from pgpulse.cli.bench import PAIR_NAMES


def test_pair_names_in_help_are_the_runner_pairs() -> None:
    assert tuple(PAIRS) == PAIR_NAMES


def test_default_output_is_a_new_folder_never_bench_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    first = fresh_out_dir(now)
    assert first == Path("pgpulse-bench-20261125-120000")
    first.mkdir()
    second = fresh_out_dir(now)  # same second: still a new folder
    assert second == Path("pgpulse-bench-20261125-120000-2")
    assert "results" not in {first.name, second.name}
