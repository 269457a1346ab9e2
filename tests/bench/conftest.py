"""One quick bench run shared by the smoke tests: seeding and the pairs are the slow part, the checks are not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgpulse.bench.runner import run_bench

SMOKE_PAIRS = ["composite", "overindex", "bloat", "profiler", "app", "workers"]


@pytest.fixture(scope="package")
def smoke_run(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    return run_bench(pg_url, SMOKE_PAIRS, quick=True, out=out, log=lambda line: None), out
