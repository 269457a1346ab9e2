"""Fuzz the query identity the profiler, log reader and advisor share: ``fingerprint``/``normalize`` never raise
on any text, and statements that differ only in their constants group together."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgpulse.sql import fingerprint, normalize, parses

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
numbers = st.decimals(allow_nan=False, allow_infinity=False, places=3)


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def constant() -> st.SearchStrategy[str]:
    return st.one_of(ints.map(str), texts.map(quoted), numbers.map(str), st.sampled_from(["true", "false", "NULL"]))


# Statement shapes with holes for constants; every hole takes any constant of any type.
SHAPES = [
    "SELECT * FROM posts WHERE user_id = {} AND status = {} ORDER BY created_at DESC LIMIT {}",
    "SELECT p.id, c.text FROM posts p JOIN comments c ON c.post_id = p.id WHERE p.id = {} OR c.user_id > {}",
    "UPDATE users SET name = {} WHERE id = {}",
    "INSERT INTO comments (post_id, user_id, text) VALUES ({}, {}, {})",
    "DELETE FROM posts WHERE created_at < now() - interval '1 day' AND user_id = {}",
    "SELECT count(*) FROM users WHERE email LIKE {} AND id BETWEEN {} AND {}",
]


@FUZZ
@given(st.text(max_size=200))
def test_any_text_gets_a_fingerprint_and_a_normal_form_without_raising(sql: str) -> None:
    fp = fingerprint(sql)
    assert isinstance(fp, str) and len(fp) == 16
    assert isinstance(normalize(sql), str)
    assert fingerprint(sql) == fp, "stable"


@FUZZ
@given(st.lists(st.sampled_from(["SELECT", "FROM", "WHERE", "(", ")", "'", "$1", ";", "--", "/*", "x", "1", " "])))
def test_sql_like_garbage_never_raises(tokens: list[str]) -> None:
    sql = " ".join(tokens)
    assert len(fingerprint(sql)) == 16
    normalize(sql)


@FUZZ
@given(st.data())
def test_same_shape_with_different_constants_shares_a_fingerprint(data: st.DataObject) -> None:
    shape = data.draw(st.sampled_from(SHAPES))
    holes = shape.count("{}")
    first = shape.format(*data.draw(st.lists(constant(), min_size=holes, max_size=holes)))
    second = shape.format(*data.draw(st.lists(constant(), min_size=holes, max_size=holes)))
    assert parses(first) and parses(second), (first, second)
    assert fingerprint(first) == fingerprint(second), (first, second)
    assert normalize(first) == normalize(second), (first, second)


@FUZZ
@given(st.lists(ints, min_size=1, max_size=20), st.lists(ints, min_size=1, max_size=20))
def test_in_lists_of_any_length_share_a_fingerprint(a: list[int], b: list[int]) -> None:
    def sql(values: list[int]) -> str:
        return f"SELECT * FROM posts WHERE id IN ({', '.join(map(str, values))})"

    assert fingerprint(sql(a)) == fingerprint(sql(b))


@FUZZ
@given(ints, texts)
def test_normal_form_never_contains_the_constants(number: int, word: str) -> None:
    sql = f"SELECT * FROM users WHERE id = {number} AND name = {quoted(word + 'zq')}"
    normal = normalize(sql)
    assert "$1" in normal and "$2" in normal
    assert quoted(word + "zq") not in normal and str(number) not in normal.replace("$1", "").replace("$2", "")


@FUZZ
@given(st.sampled_from(SHAPES), st.sampled_from(SHAPES))
def test_different_shapes_get_different_fingerprints(a: str, b: str) -> None:
    fill = ["1"] * 3
    assert (fingerprint(a.format(*fill)) == fingerprint(b.format(*fill))) == (a == b)
