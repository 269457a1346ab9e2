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


async def test_the_edge_of_redundant(db: str, execute: Any, run_check: Any) -> None:
    """Same direction, predicate and expression as the covering index is redundant; a different collation,
    a non-leading column, another column order or a unique prefix is not."""
    await execute(
        db,
        "CREATE TABLE r (a int, b int, c text)",
        "CREATE INDEX r_a_desc ON r (a DESC)",  # prefix of r_a_desc_b: same direction
        "CREATE INDEX r_a_desc_b ON r (a DESC, b)",
        "CREATE INDEX r_b_part_1 ON r (b) WHERE a > 0",
        "CREATE INDEX r_b_part_2 ON r (b) WHERE a > 0",  # same predicate: exact duplicate
        "CREATE INDEX r_lower_1 ON r (lower(c))",
        "CREATE INDEX r_lower_2 ON r (lower(c))",  # same expression: exact duplicate
        "CREATE TABLE k (a int, b int, c text)",
        'CREATE INDEX k_c_collate_c ON k (c COLLATE "C")',  # collation differs from k_c_b
        "CREATE INDEX k_c_b ON k (c, b)",
        "CREATE INDEX k_b ON k (b)",  # b is not the leading column of k_a_b
        "CREATE INDEX k_a_b ON k (a, b)",
        "CREATE UNIQUE INDEX k_a_unique ON k (a)",  # a unique prefix enforces more than k_a_b
        "CREATE TABLE o (a int, b int)",
        "CREATE INDEX o_a_b ON o (a, b)",
        "CREATE INDEX o_b_a ON o (b, a)",  # the same columns in another order
    )
    findings = {f.object: f.title for f in await run_check(db, CHECK)}
    assert findings == {
        "index r_a_desc": "index r_a_desc is a left prefix of r_a_desc_b",
        "index r_b_part_2": "index r_b_part_2 has the same columns as r_b_part_1",
        "index r_lower_2": "index r_lower_2 has the same columns as r_lower_1",
    }


async def test_covering_columns_decide_which_index_is_redundant(db: str, execute: Any, run_check: Any) -> None:
    """INCLUDE columns are not keys, but they are what an index-only scan reads: the index without them is
    the redundant one (whatever the names), and two indexes including different columns are both needed."""
    await execute(
        db,
        "CREATE TABLE c (a int, b int, d int)",
        "CREATE INDEX c_a ON c (a)",
        "CREATE INDEX c_a_covering ON c (a) INCLUDE (b)",  # sorts after c_a, yet c_a is the one to drop
        "CREATE INDEX c_b_with_a ON c (b) INCLUDE (a)",
        "CREATE INDEX c_b_with_d ON c (b) INCLUDE (d)",  # another covering column: both serve their scans
        "CREATE INDEX c_d_with_a ON c (d) INCLUDE (a)",  # a prefix of c_d_b that covers a, which c_d_b lacks
        "CREATE INDEX c_d_b ON c (d, b)",
        "CREATE TABLE e (a int, b int, d int)",
        "CREATE INDEX e_1 ON e (a) INCLUDE (b, d)",
        "CREATE INDEX e_2 ON e (a) INCLUDE (d, b)",  # the same covered columns in another order: a duplicate
    )
    findings = {f.object: f.title for f in await run_check(db, CHECK)}
    assert findings == {
        "index c_a": "index c_a has the same key columns as c_a_covering",
        "index e_2": "index e_2 has the same columns as e_1",
    }
