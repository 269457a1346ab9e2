"""The reader on logs a real PostgreSQL wrote: same answer from stderr, csvlog and jsonlog."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pgpulse.logs import parse_text, read_logs, summarize
from pgpulse.logs.summary import QueryStats

FORMATS = ["stderr", "csv", "json"]


def _by_query(path: Path) -> dict[str, QueryStats]:
    return {s.query: s for s in summarize(read_logs([path]).entries)}


def _find(stats: dict[str, QueryStats], *needles: str) -> QueryStats:
    found = [s for q, s in stats.items() if all(n in q for n in needles)]
    assert len(found) == 1, (needles, list(stats))
    return found[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_extended_protocol_counts_each_execution_once(server_logs, fmt: str) -> None:  # type: ignore[no-untyped-def]
    stats = _by_query(getattr(server_logs, fmt))
    query = _find(stats, "FROM items WHERE owner = $1 AND price > $2")
    assert query.count == 7  # parse and bind lines of the same statement are not counted
    assert query.total > 0 and query.max >= query.p95 > 0 and query.max >= query.mean > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_constants_are_grouped_into_one_shape(server_logs, fmt: str) -> None:  # type: ignore[no-untyped-def]
    stats = _by_query(getattr(server_logs, fmt))
    query = _find(stats, "FROM items WHERE id = $1")
    assert query.count == 5
    assert not any("WHERE id = 3" in q for q in stats)


@pytest.mark.parametrize("fmt", FORMATS)
def test_multi_line_statement_is_read_whole(server_logs, fmt: str) -> None:  # type: ignore[no-untyped-def]
    stats = _by_query(getattr(server_logs, fmt))
    query = _find(stats, "sum(price)", "GROUP BY owner", "ORDER BY 2 DESC")
    assert query.count == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_auto_explain_plans_are_attached_text_and_json(server_logs, fmt: str) -> None:  # type: ignore[no-untyped-def]
    stats = _by_query(getattr(server_logs, fmt))
    text_plan = _find(stats, "max(price)")
    json_plan = _find(stats, "min(price)")
    assert text_plan.count == 1 and json_plan.count == 1  # plan + duration line of one execution: counted once
    assert text_plan.plan is not None and "Seq Scan on items" in text_plan.plan
    assert json_plan.plan is not None and '"Node Type"' in json_plan.plan


@pytest.mark.parametrize("fmt", FORMATS)
def test_parameter_values_are_kept_out_of_the_summary(server_logs, log_secret: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    raw = getattr(server_logs, fmt).read_text()
    assert log_secret in raw  # the server did log it (DETAIL: parameters: ...)
    dumped = repr([s.as_dict() for s in summarize(read_logs([getattr(server_logs, fmt)]).entries)])
    assert log_secret not in dumped


def test_all_three_formats_agree(server_logs) -> None:  # type: ignore[no-untyped-def]
    summaries = [
        {q: s.count for q, s in _by_query(getattr(server_logs, fmt)).items() if "items" in q} for fmt in FORMATS
    ]
    assert summaries[0] == summaries[1] == summaries[2]
    assert len(summaries[0]) >= 6


def test_gzipped_log_reads_like_the_plain_one(server_logs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    packed = tmp_path / "postgresql.log.gz"
    packed.write_bytes(gzip.compress(server_logs.stderr.read_bytes()))
    plain = {q: s.count for q, s in _by_query(server_logs.stderr).items()}
    assert {q: s.count for q, s in _by_query(packed).items()} == plain


def test_malformed_lines_are_counted_and_skipped(server_logs) -> None:  # type: ignore[no-untyped-def]
    text = server_logs.stderr.read_text()
    lines = text.splitlines(keepends=True)
    garbage = ["@@@ not a log line\n", "\x00\x01binary junk\n", "LOG:duration: oops\n"]
    mixed = "".join(lines[:10] + garbage + lines[10:])
    clean, dirty = parse_text(text), parse_text(mixed)
    assert dirty.malformed == clean.malformed + len(garbage)
    assert len(dirty.entries) == len(clean.entries)
