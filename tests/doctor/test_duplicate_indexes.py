from __future__ import annotations

from typing import Any

from pgpulse.doctor.checks.duplicate_indexes import DuplicateIndexesCheck

CHECK = DuplicateIndexesCheck()


async def test_exact_duplicates_and_left_prefixes_are_reported(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, c text)",
        "CREATE INDEX t_a ON t (a)",  # prefix of t_a_b
        "CREATE INDEX t_a_b ON t (a, b)",
        "CREATE INDEX t_c_1 ON t (c)",
        "CREATE INDEX t_c_2 ON t (c)",  # exact duplicate of t_c_1
        "CREATE INDEX t_id ON t (id)",  # duplicate of the primary key
    )
    findings = {f.object: f for f in await run_check(db, CHECK)}
    assert set(findings) == {"index t_a", "index t_c_2", "index t_id"}
    assert findings["index t_a"].title == "index t_a is a left prefix of t_a_b"
    assert findings["index t_c_2"].title == "index t_c_2 has the same columns as t_c_1"
    assert findings["index t_id"].fix == "DROP INDEX CONCURRENTLY t_id;"
    assert "t_pkey" in findings["index t_id"].title


async def test_indexes_that_differ_in_what_matters_are_not_redundant(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, c text)",
        "CREATE INDEX t_a_desc ON t (a DESC)",  # direction differs from t_a_b
        "CREATE INDEX t_a_b ON t (a, b)",
        "CREATE INDEX t_b_partial ON t (b) WHERE a > 0",  # predicate differs
        "CREATE INDEX t_b ON t (b)",
        "CREATE INDEX t_lower ON t (lower(c))",  # expression vs column
        "CREATE INDEX t_c ON t (c)",
        "CREATE INDEX t_c_pattern ON t (c text_pattern_ops)",  # operator class differs
        "CREATE INDEX t_hash ON t USING hash (a)",  # another access method
    )
    assert await run_check(db, CHECK) == []
