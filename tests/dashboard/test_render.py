"""The plan tree and the SVG charts, from inputs written by hand (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pgpulse.dashboard.explain import build_tree
from pgpulse.dashboard.svg import line_chart, sparkline

PLAN = {
    "Node Type": "Hash Join",
    "Total Cost": 100.0,
    "Plan Rows": 10,
    "Hash Cond": "(a.id = b.a_id)",
    "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "a", "Total Cost": 70.0, "Plan Rows": 1000},
        {
            "Node Type": "Hash",
            "Total Cost": 20.0,
            "Plan Rows": 5,
            "Plans": [{"Node Type": "Index Scan", "Index Name": "b_pkey", "Total Cost": 20.0, "Plan Rows": 5}],
        },
    ],
}


def test_a_node_is_costly_when_its_own_cost_is_a_quarter_of_the_plan() -> None:
    root = build_tree(PLAN)
    scan, hash_ = root.children
    # own costs: join 100 - 70 - 20 = 10; seq scan 70; hash 0; index scan 20
    assert [(n.node_type, n.self_cost, n.costly) for n in (root, scan, hash_, hash_.children[0])] == [
        ("Hash Join", 10.0, False),
        ("Seq Scan", 70.0, True),
        ("Hash", 0.0, False),
        ("Index Scan", 20.0, False),
    ]
    assert root.details == [("Hash Cond", "(a.id = b.a_id)")]
    assert scan.details == [("Relation Name", "a")]


def test_modify_table_nodes_are_named_by_their_operation() -> None:
    assert build_tree({"Node Type": "ModifyTable", "Operation": "Delete", "Total Cost": 1.0}).node_type == "Delete"


def test_sparkline_needs_two_points_and_escapes_its_label() -> None:
    assert sparkline([1.0], "x") == ""
    svg = sparkline([0.0, 5.0, 10.0], "<b>calls</b>", width=100, height=20)
    assert "<b>" not in svg and "&lt;b&gt;calls&lt;/b&gt;" in svg
    # x from 2 to 98 in two steps; y from the bottom (18) to the top (2)
    assert 'points="2.0,18.0 50.0,10.0 98.0,2.0"' in svg


def test_line_chart_writes_its_maximum_and_time_range() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(hours=h) for h in range(3)]
    svg = line_chart(times, [1.0, 4.0, 2.0], "mean time", "ms")
    assert ">4<" in svg and ">2026-01-01 00:00<" in svg and ">2026-01-01 02:00<" in svg
