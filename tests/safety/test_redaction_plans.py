"""The redaction module on query plans and on text the scanner refuses: every literal goes, the plan stays readable.

Plans carry the statement's constants wherever the planner put them (``Filter``, ``Index Cond``, ``Recheck
Cond``, ``Hash Cond``, ``Join Filter``, ``Output`` with ``log_verbose``, ``Sort Key``...), in four formats; and
auto_explain adds ``Query Parameters`` (the bound values) since PostgreSQL 16.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgpulse.sql import redact_sql
from pgpulse.sql.redact import redact_plan, redact_plan_json

SECRET = "Pw-4uT0-sekr1t"
NUMBER = "4111111111111111"

TEXT_LINES = [
    f"Query Parameters: $1 = '{SECRET}', $2 = '{NUMBER}'",
    f"  Filter: ((owner)::text = '{SECRET}'::text)",
    f"  Index Cond: (card = '{NUMBER}'::bigint)",
    f"  Index Cond: (card = {NUMBER})",
    f"  Recheck Cond: (lower(email) = '{SECRET}'::text)",
    f"  Hash Cond: ((a.k || '{SECRET}'::text) = b.k)",
    f"  Merge Cond: (a.x = ({NUMBER} + b.y))",
    f"  Join Filter: (a.t <> '{SECRET}'::text)",
    f"  One-Time Filter: ('{SECRET}'::text = current_user)",
    f"  Output: id, ('{SECRET}'::text || name)",
    f"  Sort Key: (CASE WHEN (a = {NUMBER}) THEN 1 ELSE 2 END)",
    f"  Group Key: ('{SECRET}'::text)",
    f"  Cache Key: ('{SECRET}'::text)",
    f"  TID Cond: (ctid = '(0,{NUMBER})'::tid)",
    f"  Function Call: generate_series(1, {NUMBER})",
    f"  Run Condition: (row_number() OVER (?) <= {NUMBER})",
    f"  Settings: search_path = '{SECRET}'",
    f"  Some Future Label: '{SECRET}' {NUMBER}",
    f"  Rows Removed by Filter: 1 '{SECRET}'",  # a counter label with a literal in it is not trusted
    f"  Index Cond: (x = E'{SECRET}\\'')",
    f"  Filter: (x = $tag${SECRET}$tag$)",
    f"  Filter: (x = '{SECRET}",  # cut short: the scanner refuses it
    f"  SubPlan 1 /* {SECRET} */",
    f"        <Filter>(owner = '{SECRET}'::text)</Filter>",
    f"        <Query-Parameters>$1 = '{SECRET}'</Query-Parameters>",
    f"    Filter: \"(owner = '{SECRET}'::text)\"",  # YAML
    f'    Filter: "(\\"Owner\\" = \'{SECRET}\'::text)"',  # YAML, with an escaped quoted identifier
    f"        <Filter>(owner = &apos;{SECRET}&apos;::text)</Filter>",  # XML entities
    f"  Query Parameters: \"$1 = '{SECRET}'\"",  # YAML
    f"    - \"('{SECRET}'::text || name)\"",  # YAML list item (Output, Sort Key)
    f'    - "(card = {NUMBER})"',
    f'   "Filter": "(a = \'{SECRET}\'::text)",',  # JSON read line by line (cut short, or too deep)
    f'   "Output": ["(id = {NUMBER})"]',
]


@pytest.mark.parametrize("line", TEXT_LINES)
def test_every_literal_leaves_a_text_yaml_or_xml_plan(line: str) -> None:
    shown = redact_plan(f"Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n{line}")
    assert SECRET not in shown and NUMBER not in shown and "sekr1t" not in shown
    assert shown.startswith("Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)")


def test_a_plan_stays_readable() -> None:
    plan = "\n".join(
        [
            "Hash Join  (cost=1.09..2.19 rows=4 width=12) (actual time=0.031..0.035 rows=4.00 loops=1)",
            "  Hash Cond: (a.id = b.a_id)",
            "  Buffers: shared hit=2",
            "  ->  Seq Scan on a  (cost=0.00..1.04 rows=4 width=8) (actual time=0.005..0.006 rows=4.00 loops=1)",
            "        Filter: (owner = 'bob'::text)",
            "        Rows Removed by Filter: 4999",
            "  ->  Index Scan using b_pkey on b  (cost=0.28..8.30 rows=1 width=5) (never executed)",
            "        Index Cond: (id = 42)",
            "Planning Time: 0.080 ms",
            "Execution Time: 0.061 ms",
        ]
    )
    assert redact_plan(plan).splitlines() == [
        "Hash Join  (cost=1.09..2.19 rows=4 width=12) (actual time=0.031..0.035 rows=4.00 loops=1)",
        "  Hash Cond: (a.id = b.a_id)",
        "  Buffers: shared hit=2",
        "  ->  Seq Scan on a  (cost=0.00..1.04 rows=4 width=8) (actual time=0.005..0.006 rows=4.00 loops=1)",
        "        Filter: (owner = '***'::text)",
        "        Rows Removed by Filter: 4999",
        "  ->  Index Scan using b_pkey on b  (cost=0.28..8.30 rows=1 width=5) (never executed)",
        "        Index Cond: (id = $?)",
        "Planning Time: 0.080 ms",
        "Execution Time: 0.061 ms",
    ]


def test_a_json_plan_loses_its_literals_and_parameters_and_keeps_its_numbers() -> None:
    plan = {
        "Node Type": "Nested Loop",
        "Total Cost": 12.5,
        "Actual Rows": 3,
        "Join Filter": f"(a.x <> '{SECRET}'::text)",
        "Query Parameters": f"$1 = '{SECRET}'",
        "Settings": {"search_path": f"'{SECRET}'"},
        "Plans": [
            {
                "Node Type": "Index Scan",
                "Relation Name": "cards",
                "Index Name": "cards_pkey",
                "Index Cond": f"(number = '{NUMBER}'::bigint)",
                "Output": ["id", f"('{SECRET}'::text || name)"],
                "Sort Key": [f"(a = {NUMBER})"],
                "Unexpected": [None, True, {"deep": f"'{SECRET}'"}],
            }
        ],
    }
    shown = redact_plan_json(plan)
    dumped = json.dumps(shown)
    assert SECRET not in dumped and NUMBER not in dumped and "Query Parameters" not in dumped
    assert shown["Total Cost"] == 12.5 and shown["Actual Rows"] == 3
    assert shown["Plans"][0]["Relation Name"] == "cards" and shown["Plans"][0]["Index Name"] == "cards_pkey"
    assert shown["Plans"][0]["Index Cond"] == "(number = '***'::bigint)"
    assert json.loads(redact_plan(json.dumps(plan))) == shown  # the same through the text entry point


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM t WHERE card = {NUMBER} AND name = 'abc{SECRET}",  # cut inside a literal
        f"SELECT * FROM t WHERE card = {NUMBER} AND note = $x${SECRET}",
        f'SELECT * FROM t WHERE card = {NUMBER} AND "unterminated',
        f"SELECT {NUMBER}.5e3 /* {SECRET}",
    ],
)
def test_text_the_scanner_refuses_loses_its_numbers_too(sql: str) -> None:
    shown = redact_sql(sql)
    assert SECRET not in shown and NUMBER not in shown
    assert shown.startswith("SELECT")


def test_column_positions_are_not_values() -> None:
    assert redact_sql("SELECT a, b FROM t WHERE c = 5 GROUP BY 1, 2 ORDER BY 2 DESC, 1 LIMIT 10") == (
        "SELECT a, b FROM t WHERE c = $? GROUP BY 1, 2 ORDER BY 2 DESC, 1 LIMIT $?"
    )
    assert redact_sql(f"SELECT a FROM t ORDER BY a, {NUMBER}") == "SELECT a FROM t ORDER BY a, $?"


@pytest.mark.parametrize("depth", [60, 120, 3000])
def test_a_json_plan_too_deep_or_cut_short_still_loses_its_literals(depth: int) -> None:
    """Structured redaction needs the whole document and the stack to walk it; without them the plan is read line
    by line, and the literals inside its double-quoted strings must still go."""
    level = f'{{"Filter": "(a = \'{SECRET}\'::text)", "Index Cond": "(id = {NUMBER})", "Plans": ['
    whole = level * depth + "1" + "]}" * depth
    for plan in (whole, whole[: len(whole) // 2]):
        shown = redact_plan(plan)
        assert SECRET not in shown and NUMBER not in shown


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(max_size=200),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=8, max_size=20),
    st.sampled_from(["  Filter: (x = {})", '  - "(x = {})"', "<Filter>(x = {})</Filter>", '"Index Cond": "(x = {})"']),
)
def test_random_plans_never_raise_and_a_quoted_literal_never_shows(noise: str, secret: str, template: str) -> None:
    shown = redact_plan(noise + "\n" + template.format(f"'{secret}'::text") + "\n" + noise)
    assert secret not in shown.replace(noise, "") or secret in noise


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_random_json_plans_never_raise(doc: object) -> None:
    json.dumps(redact_plan_json(doc), allow_nan=True)
