"""The one byte formatter of the doctor's and the advisor's reports: PostgreSQL's units, powers of 1024."""

from __future__ import annotations

import pytest

from pgpulse.units import pretty_bytes


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "?"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 kB"),
        (1536, "1.5 kB"),
        (8 * 1024**2, "8.0 MB"),
        (int(2.5 * 1024**3), "2.5 GB"),
        (2048 * 1024**3, "2.0 TB"),  # the advisor's copy stopped at GB: "2048.0 GB"
        (5000 * 1024**4, "5000.0 TB"),
        (-2048, "-2.0 kB"),  # a shrinking size (a diff) keeps its sign
    ],
)
def test_pretty_bytes(size: int | None, shown: str) -> None:
    assert pretty_bytes(size) == shown
