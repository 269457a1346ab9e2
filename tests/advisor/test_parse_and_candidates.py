"""Reading queries and choosing column order, without a server: the rules stated in the modules' docstrings."""

from __future__ import annotations

import pytest

from pgpulse.advisor.candidates import Candidate, IndexColumn, candidates_for, covering_index, resolve
from pgpulse.advisor.catalog import ColumnStats, ExistingIndex, TableInfo
from pgpulse.advisor.parse import NotAQuery, UnsupportedQuery, analyze


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


def test_or_not_and_casts_are_not_plain_predicates_but_immutable_expressions_are() -> None:
    shape = analyze(
        "SELECT * FROM users WHERE (a = 1 OR b = 2) AND NOT c = 3 AND lower(email) = $1 AND d::text = 'x' "
        "AND date(created_at) = $2 AND data ->> 'k' = 'v'"
    )
    got = [(p.column, p.kind, p.param, p.expression is not None) for p in shape.predicates]
    assert got == [("email", "eq", 1, True), ("data", "eq", None, True)]  # date(timestamptz) is not immutable
    users = _table("users", {"id": -1.0, "email": -1.0, "data": -1.0})
    plan = resolve(shape, {"users": users}).plans[0]
    assert plan.expressions == ["lower(email)", "data ->> 'k'"] and plan.equality == []
    assert [_cols(c) for c in candidates_for(plan)] == [["(lower(email))"], ["(data ->> 'k')"]]


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
    ["SELEC 1", "SELECT 1; SELECT 2", "CREATE TABLE x (a int)", "SELECT 1", "SELECT 1 UNION SELECT 2"],
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


# SQL as drivers send it, and tables anywhere in the tree -------------------------------------------------------

USERS = {"id": -1.0, "email": -1.0, "name": -0.5}
COMMENTS = {"id": -1.0, "post_id": -0.3, "user_id": 20_000, "body": -1.0}
CATALOG = {"posts": POSTS, "users": USERS, "comments": COMMENTS}


def _resolve(sql: str, views: dict[tuple[str | None, str], str] | None = None) -> dict[str, dict[str, object]]:
    """Per table alias: equality, IN, range, join columns and ORDER BY, as the candidates see them."""
    shape = analyze(sql, views)
    tables = {ref.alias: _table(ref.name, CATALOG[ref.name]) for ref in shape.tables}
    resolution = resolve(shape, tables)
    aliases = [ref.alias for ref in shape.tables]
    return {
        alias: {
            "eq": plan.equality,
            "in": plan.in_list,
            "range": plan.ranges,
            "join": plan.joins,
            "order": [(o.column, o.desc) for o in plan.order],
        }
        for alias, plan in zip(aliases, resolution.plans, strict=True)
    }


def test_typed_parameters_and_limit_as_sqlalchemy_asyncpg_sends_them() -> None:
    shape = analyze(
        "SELECT posts.id, posts.title FROM posts WHERE posts.user_id = $1::BIGINT AND posts.status = $2::VARCHAR "
        "ORDER BY posts.created_at DESC LIMIT $3::INTEGER OFFSET $4::INTEGER"
    )
    assert [(p.column, p.kind, p.param) for p in shape.predicates] == [("user_id", "eq", 1), ("status", "eq", 2)]
    assert (shape.limit_param, shape.offset_param, shape.has_limit) == (3, 4, True)
    assert [(o.column, o.desc) for o in shape.order_by] == [("created_at", True)]
    assert shape.params == {1, 2, 3, 4}


def test_expanded_in_list_binds_every_parameter_to_the_column() -> None:
    shape = analyze("SELECT * FROM comments WHERE comments.post_id IN ($1::BIGINT, $2::BIGINT, $3::BIGINT)")
    resolution = resolve(shape, {"comments": _table("comments", COMMENTS)})
    assert resolution.plans[0].in_list == ["post_id"]
    assert sorted(resolution.params) == [1, 2, 3]
    assert {(stats.name, pred.kind) for stats, pred in resolution.params.values()} == {("post_id", "eq")}
    comments = _table("comments", COMMENTS)
    comments.columns["post_id"] = ColumnStats("post_id", "bigint", -0.3, 0.0, ("7", "9"), (0.01, 0.01), ("1", "50"))
    spread = resolve(shape, {"comments": comments}).params
    assert [spread[n][0].mcv for n in (1, 2, 3)] == [("7",), ("9",), ("1",)]  # one value each, not $1's thrice


def test_any_array_parameter_and_single_element_in() -> None:
    shape = analyze("SELECT * FROM posts WHERE id = ANY($1::bigint[]) AND user_id IN ($2)")
    got = [(p.column, p.kind, p.param) for p in shape.predicates]
    assert got == [("id", "in", 1), ("user_id", "eq", 2)]


def test_optional_filter_is_the_comparison_when_the_parameter_is_given() -> None:
    shape = analyze("SELECT * FROM posts WHERE user_id = $1 AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT 20")
    got = [(p.column, p.kind, p.op, p.param) for p in shape.predicates]
    assert got == [("user_id", "eq", "=", 1), ("id", "range", ">", 2)]


def test_pg_stat_statements_text_and_parameters_from_the_tree_not_the_text() -> None:
    shape = analyze("SELECT * FROM posts WHERE title = '$300000000' AND user_id = $1 LIMIT $2")
    assert shape.params == {1, 2}
    assert [(p.column, p.param) for p in shape.predicates] == [("title", None), ("user_id", 1)]
    assert shape.limit_param == 2


def test_order_by_position_alias_and_star_in_catalog_order() -> None:
    assert _resolve("SELECT user_id FROM posts ORDER BY 1 DESC LIMIT 10")["posts"]["order"] == [("user_id", True)]
    assert _resolve("SELECT user_id AS u FROM posts ORDER BY u DESC LIMIT 10")["posts"]["order"] == [("user_id", True)]
    # POSTS' columns in catalog order: id, user_id, status, created_at, title
    assert _resolve("SELECT * FROM posts ORDER BY 2, 4 DESC LIMIT 5")["posts"]["order"] == [
        ("user_id", False),
        ("created_at", True),
    ]
    assert _resolve("SELECT count(*) AS n, user_id FROM posts GROUP BY 2 ORDER BY 1 LIMIT 5")["posts"]["order"] == []


def test_ctes_inline_and_materialized() -> None:
    inline = _resolve("WITH c AS (SELECT * FROM posts) SELECT * FROM c WHERE user_id = $1")
    assert inline["posts"]["eq"] == ["user_id"]
    inside = _resolve("WITH c AS MATERIALIZED (SELECT * FROM posts WHERE status = 'x') SELECT * FROM c WHERE id = 1")
    assert inside["posts"]["eq"] == ["status"]  # a filter outside a MATERIALIZED CTE does not reach its table
    twice = _resolve("WITH c AS (SELECT * FROM posts) SELECT * FROM c a JOIN c b ON a.id = b.user_id WHERE a.id = 1")
    assert twice["posts"]["eq"] == [] and twice["posts"]["join"] == []  # used twice: materialized by default
    renamed = _resolve("WITH c (pid, author) AS (SELECT id, user_id FROM posts) SELECT * FROM c WHERE author = 3")
    assert renamed["posts"]["eq"] == ["user_id"]


def test_subqueries_in_from_where_select_and_lateral() -> None:
    got = _resolve(
        "SELECT p.id, (SELECT count(*) FROM comments c WHERE c.post_id = p.id) AS n "
        "FROM (SELECT * FROM posts WHERE status = $1) p "
        "WHERE p.user_id IN (SELECT u.id FROM users u WHERE u.email = $2) "
        "AND EXISTS (SELECT 1 FROM comments c2 WHERE c2.post_id = p.id AND c2.user_id = $3) "
        "ORDER BY p.created_at DESC LIMIT 10"
    )
    assert got["posts"] == {
        "eq": ["status"],
        "in": [],
        "range": [],
        "join": ["id", "user_id"],  # EXISTS before IN: the order subqueries are read in
        "order": [("created_at", True)],
    }
    assert got["u"]["eq"] == ["email"] and got["u"]["join"] == ["id"]
    assert got["c"]["join"] == ["post_id"]
    assert got["c2"]["eq"] == ["user_id"] and got["c2"]["join"] == ["post_id"]
    lateral = _resolve(
        "SELECT * FROM users u, LATERAL (SELECT * FROM posts p WHERE p.user_id = u.id ORDER BY p.id DESC LIMIT 3) x "
        "WHERE u.email = $1"
    )
    assert lateral["p"]["join"] == ["user_id"] and lateral["u"]["eq"] == ["email"]


def test_union_branches_update_from_and_delete_using() -> None:
    union = _resolve("SELECT id FROM posts WHERE user_id = 1 UNION ALL SELECT id FROM posts WHERE status = 'x'")
    assert union["posts"]["eq"] == ["user_id"] and union["posts#2"]["eq"] == ["status"]
    update = analyze("UPDATE posts p SET status = 'x' FROM users u WHERE u.id = p.user_id AND u.email = $1")
    assert update.statement == "update" and [t.alias for t in update.tables] == ["p", "u"]
    delete = _resolve("DELETE FROM comments c USING posts p WHERE c.post_id = p.id AND p.user_id = $1")
    assert delete["c"]["join"] == ["post_id"] and delete["p"]["eq"] == ["user_id"]


def test_views_resolve_to_base_columns() -> None:
    views = {(None, "posts_view"): "SELECT posts.id AS view_id, posts.user_id FROM posts;"}
    got = _resolve("SELECT * FROM posts_view WHERE view_id = 1", views)
    assert got["posts"]["eq"] == ["id"]
    shape = analyze("SELECT * FROM posts_view WHERE view_id = 1", views)
    assert [(t.name, t.view) for t in shape.tables] == [("posts", "posts_view")]


def test_same_alias_in_two_scopes_stays_apart() -> None:
    got = _resolve(
        "SELECT * FROM posts p WHERE p.user_id = 1 AND p.id IN (SELECT p.id FROM posts p WHERE p.status = 'x')"
    )
    assert got["p"]["eq"] == ["user_id"] and got["p#2"]["eq"] == ["status"]


@pytest.mark.parametrize(
    "sql", ["BEGIN ISOLATION LEVEL READ COMMITTED", "SHOW standard_conforming_strings", "INSERT INTO t VALUES ($1)"]
)
def test_log_noise_is_not_a_query(sql: str) -> None:
    with pytest.raises(NotAQuery):
        analyze(sql)


def test_insert_select_reads_its_select() -> None:
    shape = analyze("INSERT INTO archive SELECT * FROM posts WHERE status = $1")
    assert shape.statement == "insert" and [t.name for t in shape.tables] == ["posts"]
    assert [(p.column, p.param) for p in shape.predicates] == [("status", 1)]


def test_normalized_constants_in_the_select_list_get_a_placeholder() -> None:
    shape = analyze(
        "SELECT json_build_object($2, u.id, $3, $4::json, $5::timestamptz) FROM users u WHERE u.id = $1 LIMIT $6"
    )
    assert shape.placeholder_params == {2, 3, 4}  # not $5: '0' is no timestamp; not $1 (a column's value)


def test_only_btree_keyable_types_become_keys_and_keys_are_capped() -> None:
    info = _table(
        "docs", {"id": -1.0, "doc": -1.0, "spot": -1.0, "tags": -1.0, **{f"c{i}": 10.0 + i for i in range(7)}}
    )
    types = {"doc": "json", "spot": "point", "tags": "character varying(20)[]"}
    info.columns = {n: ColumnStats(n, types.get(n, "integer"), s.n_distinct, 0.0) for n, s in info.columns.items()}
    shape = analyze("SELECT * FROM docs WHERE doc = $1 AND tags = $2 ORDER BY spot LIMIT 5")
    assert [_cols(c) for c in candidates_for(resolve(shape, {"docs": info}).plans[0])] == [["tags"]]
    wide = " AND ".join(f"c{i} = {i}" for i in range(7))
    first = candidates_for(resolve(analyze(f"SELECT * FROM docs WHERE {wide}"), {"docs": info}).plans[0])[0]
    assert _cols(first) == ["c6", "c5", "c4", "c3", "c2"]  # five keys, the most selective first


def test_a_few_more_columns_read_are_offered_as_include_columns() -> None:
    shape = analyze("SELECT title, status FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10")
    found = candidates_for(resolve(shape, {"posts": _table("posts", POSTS)}).plans[0])
    wider = [c for c in found if c.include]
    assert [(_cols(c), c.include) for c in wider] == [(["user_id", "created_at DESC"], ("status", "title"))]
    assert wider[0].create_sql(False) == (
        "CREATE INDEX ix_posts_user_id_created_at_incl ON posts (user_id, created_at DESC) INCLUDE (status, title)"
    )
    assert not [
        c
        for c in candidates_for(
            resolve(analyze("SELECT * FROM posts WHERE user_id = 1"), {"posts": _table("posts", POSTS)}).plans[0]
        )
        if c.include
    ]
