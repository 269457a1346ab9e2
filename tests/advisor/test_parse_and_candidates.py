"""Reading queries and choosing column order, without a server: the rules stated in the modules' docstrings."""

from __future__ import annotations

import pytest

from pgpulse.advisor.candidates import Candidate, IndexColumn, candidates_for, covering_index, resolve
from pgpulse.advisor.catalog import ColumnStats, ExistingIndex, TableInfo
from pgpulse.advisor.parse import UnsupportedQuery, analyze


def _table(name: str, distinct: dict[str, float], indexes: tuple[ExistingIndex, ...] = ()) -> TableInfo:
    info = TableInfo(oid=1, schema="public", name=name, rows=1e6, pages=10_000, total_bytes=0, writes=0, scans=0)
    info.columns = {c: ColumnStats(c, "int", n, 0.0) for c, n in distinct.items()}
    info.indexes = list(indexes)
    return info


POSTS = {"id": -1.0, "user_id": 20_000, "status": 3, "created_at": -0.9, "title": -1.0}


def _cols(candidate: Candidate) -> list[str]:
    return [c.sql() for c in candidate.columns]


def test_seed_query_shape() -> None:
    shape = analyze("SELECT * FROM posts WHERE user_id = $1 AND status = 'published' ORDER BY created_at DESC LIMIT 10")
    assert [(p.column, p.kind, p.param) for p in shape.predicates] == [("user_id", "eq", 1), ("status", "eq", None)]
    assert [(o.column, o.desc) for o in shape.order_by] == [("created_at", True)]
    assert shape.has_limit


def test_seed_query_candidate_is_exactly_the_composite() -> None:
    shape = analyze("SELECT * FROM posts WHERE status = 'published' AND user_id = $1 ORDER BY created_at DESC LIMIT 10")
    plan = resolve(shape, {"posts": _table("posts", POSTS)}).plans[0]
    assert _cols(candidates_for(plan)[0]) == ["user_id", "status", "created_at DESC"]  # selectivity, not text order


def test_or_not_and_expressions_are_not_indexable_predicates() -> None:
    shape = analyze("SELECT * FROM users WHERE (a = 1 OR b = 2) AND NOT c = 3 AND lower(email) = $1 AND d::text = 'x'")
    assert shape.predicates == []


def test_between_in_any_and_is_null() -> None:
    shape = analyze("SELECT 1 FROM t WHERE a BETWEEN $1 AND $2 AND b IN (1, 2) AND c = ANY($3) AND d IS NULL AND 5 < e")
    got = [(p.column, p.kind, p.op, p.param) for p in shape.predicates]
    assert got == [
        ("a", "range", ">=", 1),
        ("a", "range", "<=", 2),
        ("b", "in", "IN", None),
        ("c", "in", "IN", 3),
        ("d", "null", "IS NULL", None),
        ("e", "range", ">", None),  # constant on the left: the operator is flipped
    ]


@pytest.mark.parametrize(
    "sql",
    ["SELEC 1", "SELECT 1; SELECT 2", "CREATE TABLE x (a int)", "SELECT 1", "SELECT a FROM t UNION SELECT a FROM u"],
)
def test_unsupported_statements_say_why(sql: str) -> None:
    with pytest.raises(UnsupportedQuery):
        analyze(sql)


def test_in_list_breaks_the_order_tail() -> None:
    shape = analyze("SELECT * FROM posts WHERE user_id = ANY($1) ORDER BY created_at DESC LIMIT 10")
    plan = resolve(shape, {"posts": _table("posts", POSTS)}).plans[0]
    assert [_cols(c) for c in candidates_for(plan)] == [["user_id"]]


def test_unqualified_columns_resolve_to_the_table_that_has_them() -> None:
    shape = analyze("SELECT * FROM posts p JOIN users u ON u.id = p.user_id WHERE email = $1 AND status = 'x'")
    users = _table("users", {"id": -1.0, "email": -1.0})
    resolution = resolve(shape, {"p": _table("posts", POSTS), "u": users})
    by_table = {p.table.name: p for p in resolution.plans}
    assert by_table["users"].equality == ["email"] and by_table["users"].joins == ["id"]
    assert by_table["posts"].equality == ["status"] and by_table["posts"].joins == ["user_id"]
    assert resolution.params[1][0].name == "email"


def test_existing_index_covers_as_a_prefix_with_free_equality_order_and_reversed_direction() -> None:
    existing = ExistingIndex(
        "ix", "btree", True, False, (("status", False), ("user_id", False), ("created_at", False), ("id", False)), ""
    )
    info = _table("posts", POSTS, (existing,))
    wanted = Candidate(
        info, "public.posts", (IndexColumn("user_id"), IndexColumn("status"), IndexColumn("created_at", True)), 2
    )
    assert covering_index(wanted) is existing  # equality columns in any order; a B-tree scans backwards too
    partial = ExistingIndex("p", "btree", True, True, existing.columns, "")
    invalid = ExistingIndex("i", "btree", False, False, existing.columns, "")
    hashed = ExistingIndex("h", "hash", True, False, existing.columns[:1], "")
    for useless in (partial, invalid, hashed):
        assert covering_index(Candidate(_table("posts", POSTS, (useless,)), "public.posts", wanted.columns, 2)) is None
    mixed = Candidate(
        info,
        "public.posts",
        (IndexColumn("status"), IndexColumn("user_id"), IndexColumn("created_at"), IndexColumn("id", True)),
        2,
    )
    assert covering_index(mixed) is None  # one direction flipped, the other not: not the same order
