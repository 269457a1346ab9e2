"""What a query shape is shown as: normalized SQL that `advise --log` can still EXPLAIN, with no value left in it."""

from __future__ import annotations

from pgpulse.logs import parse_text, summarize
from pgpulse.sql import parses

LINE = "2026-11-24 10:00:00 UTC [1] LOG:  duration: 1 ms  statement: {}\n"


def _shown(*statements: str) -> list[str]:
    return [s.query for s in summarize(parse_text("".join(LINE.format(q) for q in statements)).entries)]


def test_one_dml_statement_keeps_its_structure_and_stays_valid_sql() -> None:
    (query,) = _shown("SELECT a::varchar(10), b::numeric(10,2) FROM t WHERE c = 4111 /* 7 */ ORDER BY 2 LIMIT 5")
    assert query == "SELECT a::varchar(10), b::numeric(10,2) FROM t WHERE c = $1  ORDER BY 2 LIMIT $2"
    assert parses(query)


def test_numbers_normalize_leaves_in_other_statements_are_masked() -> None:
    shown = _shown(
        "CREATE VIEW v AS SELECT * FROM t WHERE card = 4111111111",
        "SELECT 1; CREATE VIEW w AS SELECT 4111222333",
        "PREPARE p AS SELECT * FROM t WHERE card = 4111444555",
    )
    assert shown == [
        "CREATE VIEW v AS SELECT * FROM t WHERE card = $?",
        "SELECT $1; CREATE VIEW w AS SELECT $?",
        "PREPARE p AS SELECT * FROM t WHERE card = $?",
    ]
