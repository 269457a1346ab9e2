"""The one-statement guard, extended for what a SelectStmt can do besides reading (pure parsing: no server)."""

from __future__ import annotations

import pytest

from pgpulse.sql.guard import (
    DML_KINDS,
    UnsafeStatementError,
    execution_hazard,
    function_names,
    one_statement,
    parameter_numbers,
)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * INTO stolen FROM t", "SELECT … INTO creates a table"),
        ("SELECT 1 AS a UNION SELECT 2 INTO stolen", "SELECT … INTO creates a table"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "data-modifying WITH (DELETE)"),
        ("WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT 1", "data-modifying WITH (UPDATE)"),
        ("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1", "data-modifying WITH (INSERT)"),
        ("SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) x", "data-modifying WITH"),
        ("SELECT 1; COMMIT; BEGIN READ WRITE; DROP TABLE victim", "4 statements"),
        ("COMMIT", "TransactionStmt"),
        ("EXPLAIN ANALYZE DELETE FROM t", "ExplainStmt"),
        ("SELECT '", "does not parse"),
    ],
)
def test_reads_that_write_are_refused(sql: str, reason: str) -> None:
    with pytest.raises(UnsafeStatementError) as refused:
        one_statement(sql)
    assert reason in str(refused.value)


def test_a_data_modifying_with_is_only_a_statement_of_its_kind() -> None:
    sql = "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"
    stmt = one_statement(sql, DML_KINDS)  # allowed where DELETE is (to EXPLAIN), never executed:
    assert execution_hazard(stmt) == "a data-modifying WITH (DELETE) writes rows"


@pytest.mark.parametrize(
    ("sql", "hazard"),
    [
        ("SELECT * FROM t WHERE a = 1", None),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE/SHARE locks the rows it reads"),
        ("SELECT * FROM t WHERE a IN (SELECT a FROM u FOR SHARE)", "FOR UPDATE/SHARE locks the rows it reads"),
        ("SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", "FOR UPDATE/SHARE locks the rows it reads"),
        ("UPDATE t SET a = 1", "UPDATE writes rows"),
        ("DELETE FROM t", "DELETE writes rows"),
        ("INSERT INTO t SELECT 1", "INSERT writes rows"),
    ],
)
def test_execution_hazard(sql: str, hazard: str | None) -> None:
    assert execution_hazard(one_statement(sql, DML_KINDS)) == hazard


def test_placeholders_come_from_the_parse_tree_not_the_text() -> None:
    sql = (
        "SELECT '$7', E'\\\\$8 \\'', $q$ $9 $q$, U&'$10' /* $11 */ FROM t WHERE a = $2 AND b = '$300000000' -- $12\n"
        "AND c = $3::int"
    )
    assert parameter_numbers(one_statement(sql)) == {2, 3}


def test_function_names_include_schema_and_table_functions() -> None:
    sql = "SELECT nextval('s'), pg_catalog.set_config('a', 'b', false) FROM generate_series(1, 2) g, t"
    assert function_names(one_statement(sql)) == {
        (None, "nextval"),
        ("pg_catalog", "set_config"),
        (None, "generate_series"),
    }
