"""The memo of statement texts (pgpulse.sql.cache): bounded in entries and bytes whatever texts it is given,
right for every text, oldest-first eviction, consistent under threads; and the public functions built on it."""

from __future__ import annotations

import random
import string
import sys
import threading

import pytest

from pgpulse.profiler.statements import SHAPES, shape, shape_uncached
from pgpulse.sql import fingerprint, normalize
from pgpulse.sql.cache import BoundedTextCache, text_bytes
from pgpulse.sql.shape import (
    FINGERPRINTS,
    MAX_BYTES,
    MAX_ENTRIES,
    MAX_ITEM_BYTES,
    NORMALIZED,
    fingerprint_uncached,
    normalize_uncached,
)

KIB = 1024


def upper(text: str) -> str:
    return text.upper()


def make(max_entries: int = 100, max_bytes: int = 64 * KIB, max_item_bytes: int = 16 * KIB) -> BoundedTextCache[str]:
    return BoundedTextCache(
        upper, max_entries=max_entries, max_bytes=max_bytes, max_item_bytes=max_item_bytes, weigh=text_bytes
    )


def stored_bytes(cache: BoundedTextCache[str]) -> int:
    """What the stored entries weigh now, recomputed from the entries themselves (not the cache's counter)."""
    return sum(text_bytes(text) + text_bytes(cache.lookup(text) or "") for text, _ in cache.weights())


def test_the_byte_budget_holds_after_every_insert_of_large_distinct_texts() -> None:
    cache = make(max_entries=1000, max_bytes=64 * KIB, max_item_bytes=16 * KIB)
    for i in range(500):
        text = f"{i:06d}" + "x" * random.Random(i).randrange(100, 7 * KIB)
        assert cache(text) == text.upper()
        assert cache.bytes <= 64 * KIB and len(cache) <= 1000
        assert cache.bytes == stored_bytes(cache)
    assert len(cache) < 500  # the bytes, not the entry count, stopped it


def test_the_entry_budget_holds_for_small_texts() -> None:
    cache = make(max_entries=50, max_bytes=10 * 1024 * KIB)
    for i in range(1000):
        cache(f"SELECT {i}")
        assert len(cache) <= 50
    assert len(cache) == 50 and cache.bytes == stored_bytes(cache)


def test_a_text_over_the_item_limit_is_computed_but_not_stored() -> None:
    cache = make(max_item_bytes=16 * KIB)
    big = "select " + "y" * (16 * KIB)
    assert cache(big) == big.upper()
    assert big not in cache and len(cache) == 0 and cache.bytes == 0
    assert cache(big) == big.upper()  # computed again, still right
    fits = "z" * (8 * KIB - text_bytes(""))  # key and value weigh exactly 16 KiB together: kept
    assert text_bytes(fits) + text_bytes(fits.upper()) == 16 * KIB
    cache(fits)
    cache(fits + "z")
    assert fits in cache and fits + "z" not in cache


def test_non_ascii_text_is_weighed_by_its_memory_not_its_length() -> None:
    wide = "😀" * 1000  # 4 bytes a character in the str, 4 more in a UTF-8 copy
    assert text_bytes(wide) >= sys.getsizeof(wide) + 4000 > 8000
    cache = make(max_item_bytes=16 * KIB)
    cache(wide * 2)  # 2,000 characters, over 16 KiB in memory: not kept
    assert len(cache) == 0


def test_a_hit_returns_the_stored_value_itself() -> None:
    calls: list[str] = []

    def counted(text: str) -> str:
        calls.append(text)
        return text.upper()

    cache = BoundedTextCache(counted, max_entries=10, max_bytes=KIB * KIB, max_item_bytes=KIB * KIB, weigh=text_bytes)
    first = cache("select 1")
    assert cache("select 1") is first and cache.lookup("select 1") is first
    assert calls == ["select 1"]


def test_eviction_is_oldest_first_and_a_hit_does_not_refresh() -> None:
    cache = make(max_entries=3)
    for text in ("a", "b", "c"):
        cache(text)
    cache("a")  # a hit: no reordering (documented: insertion order, not LRU)
    cache("d")
    assert [t for t, _ in cache.weights()] == ["b", "c", "d"]
    cache("e")
    assert "b" not in cache and [t for t, _ in cache.weights()] == ["c", "d", "e"]


def test_eviction_by_bytes_drops_the_oldest_until_the_new_entry_fits() -> None:
    item = 2 * text_bytes("q" * 1000)
    cache = make(max_entries=100, max_bytes=3 * item, max_item_bytes=item)
    texts = [c * 1000 for c in "abcde"]
    for text in texts[:3]:
        cache(text)
    assert len(cache) == 3 and cache.bytes == 3 * item
    cache(texts[3])
    assert [t[0] for t, _ in cache.weights()] == ["b", "c", "d"]


def test_clear_empties_it() -> None:
    cache = make()
    cache("select 1")
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and list(cache.weights()) == []


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        make(max_bytes=KIB, max_item_bytes=2 * KIB)
    with pytest.raises(ValueError):
        make(max_entries=0)


def test_eight_threads_of_random_texts_keep_both_limits_and_an_exact_byte_count() -> None:
    limit = 256 * KIB
    cache = make(max_entries=300, max_bytes=limit, max_item_bytes=16 * KIB)
    errors: list[BaseException] = []
    over: list[tuple[int, int]] = []
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        pool = ["".join(rng.choices(string.ascii_letters, k=rng.randrange(1, 12 * KIB))) for _ in range(150)]
        try:
            start.wait()
            for _ in range(3000):
                text = rng.choice(pool) if rng.random() < 0.5 else f"{seed}-{rng.random()}" * rng.randrange(1, 900)
                assert cache(text) == text.upper()
                size, entries = cache.bytes, len(cache)
                if size > limit or entries > 300:
                    over.append((size, entries))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up if there are any
    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert errors == [] and over == []
    assert len(cache) == len(list(cache.weights())) <= 300
    assert cache.bytes == stored_bytes(cache) <= limit


# The public functions built on it.

STATEMENTS = [
    "SELECT users.id, users.name FROM users WHERE users.id = 42 AND users.email = 'a@b.c'",
    "SELECT users.id, users.name FROM users WHERE users.id = $1 AND users.email = $2",
    "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z'), (4, 'w'), (5, 'v')",
    "UPDATE t SET a = a + 1 /* note: secret */ WHERE b IN (1, 2, 3, 4, 5, 6)",
    "SELEC broken 'text' 12",
    "",
]


@pytest.mark.parametrize("sql", STATEMENTS)
def test_fingerprint_normalize_and_shape_give_what_the_uncached_functions_give(sql: str) -> None:
    for _ in range(2):  # a miss, then a hit
        assert fingerprint(sql) == fingerprint_uncached(sql)
        assert normalize(sql) == normalize_uncached(sql)
        assert shape(sql) == shape_uncached(sql)


def test_statements_that_differ_only_in_constants_share_a_fingerprint() -> None:
    assert fingerprint(STATEMENTS[0]) == fingerprint(STATEMENTS[1])
    assert fingerprint("SELEC  Broken") == fingerprint("selec broken")  # unparsable: hash of the folded words


def test_a_large_statement_is_fingerprinted_right_and_never_kept() -> None:
    big = "SELECT 1 WHERE '" + "k" * (100 * KIB) + "' <> ''"
    assert fingerprint(big) == fingerprint("SELECT 1 WHERE 'small' <> ''")
    assert normalize(big) == "SELECT $1 WHERE $2 <> $3"
    assert shape(big) == "SELECT $1 WHERE $2 <> $3"
    assert big not in FINGERPRINTS and big not in NORMALIZED and big not in SHAPES


def test_the_shared_limits_are_the_documented_ones() -> None:
    assert (MAX_ENTRIES, MAX_BYTES, MAX_ITEM_BYTES) == (8192, 32 * KIB * KIB, 16 * KIB)
    for cache in (FINGERPRINTS, NORMALIZED):
        assert cache.max_entries == MAX_ENTRIES and cache.max_bytes == MAX_BYTES
        assert cache.max_item_bytes == MAX_ITEM_BYTES
