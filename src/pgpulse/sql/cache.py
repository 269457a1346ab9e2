"""A memo of a function of statement text, bounded by entries *and* bytes: the one cache the library keeps of
texts it did not write.

``functools.lru_cache(maxsize=n)`` bounds the number of entries, not their size: an application that sends
distinct large texts (a bulk ``INSERT … VALUES`` with literals, ``text()`` built with f-strings, 100 KB
statements) would keep n of them, keys and values, for the life of the process — gigabytes in a long-running
app. :class:`BoundedTextCache` also caps the bytes held (key + value, as ``sys.getsizeof`` counts them) and never
stores a single entry over ``max_item_bytes``: such a text is computed on every call. An application has a few
hundred statement shapes of a few hundred bytes each; a text past the item limit is a bulk statement that rarely
repeats verbatim, so not caching it costs little.

Eviction is oldest-first (insertion order), not least-recently-used: a hit is then a single ``dict.get`` with no
bookkeeping, no lock and no reordering, which keeps it as cheap as an ``lru_cache`` hit on the profiler's hot
path. The price is that a hot text is evicted once each time a stream of distinct texts turns the whole cache
over, and recomputed once on its next call (one parse per ``max_entries`` misses, against an LRU's move on
every hit).

Threads: profiler listeners run on many threads. A hit reads the dict without a lock (``dict.get`` is atomic
under the GIL). A miss computes the value without the lock (a parse takes microseconds to milliseconds; callers
must not wait on each other's), then takes the lock to insert, count the bytes and evict, so the byte total
always equals the sum over the stored entries. Two threads missing on one text both compute it; the first to
insert wins and both return equal values.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")

# Bytes ``text_bytes`` adds per character of a non-ASCII text: its UTF-8 form (at most 4 bytes a character),
# which CPython caches inside the str object once a driver asks for it, after the text was weighed.
_UTF8_MAX = 4


def text_bytes(text: str) -> int:
    """The memory a str holds, counted on the safe side: ``sys.getsizeof`` (header + 1, 2 or 4 bytes a
    character), plus room for the UTF-8 copy a non-ASCII str may later cache in itself. ``isascii`` is O(1)."""
    size = sys.getsizeof(text)
    return size if text.isascii() else size + _UTF8_MAX * len(text)


class BoundedTextCache(Generic[V]):
    """Memo of ``compute(text)``, holding at most ``max_entries`` entries and ``max_bytes`` bytes (the weight of
    each key by :func:`text_bytes` plus ``weigh(value)``); an entry heavier than ``max_item_bytes`` is returned
    but never stored. The dict and index overhead per entry (about 100 bytes) is bounded by ``max_entries``.

    The fast path for a caller on a hot path is ``found = cache.lookup(text)`` (the dict's own ``get``: None on
    a miss) then ``cache.miss(text)``; ``cache(text)`` does both.
    """

    def __init__(
        self,
        compute: Callable[[str], V],
        *,
        max_entries: int,
        max_bytes: int,
        max_item_bytes: int,
        weigh: Callable[[V], int],
    ) -> None:
        if max_entries < 1 or max_item_bytes < 1 or max_bytes < max_item_bytes:
            raise ValueError("need max_entries >= 1 and max_bytes >= max_item_bytes >= 1")
        self.compute = compute
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self._weigh = weigh
        self._entries: dict[str, V] = {}
        # Insertion order with each entry's weight as counted when stored: popping the oldest is O(1) (a dict's
        # ``next(iter(d))`` walks over every slot deleted since its last resize), and a weight that changed
        # since (a str that cached its UTF-8 form) cannot unbalance the byte total.
        self._order: deque[tuple[str, int]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.lookup: Callable[[str], V | None] = self._entries.get

    def __call__(self, text: str) -> V:
        found = self._entries.get(text)
        return found if found is not None else self.miss(text)

    def miss(self, text: str) -> V:
        """Compute the value (outside the lock) and store it if it fits."""
        return self.store(text, self.compute(text))

    def store(self, text: str, value: V) -> V:
        """Remember ``value`` for ``text`` (evicting the oldest entries until both limits hold) unless the entry
        alone is over ``max_item_bytes``; returns the value kept for ``text``. For a caller whose key is not the
        input of the computation (the log reader keys fingerprints by a text with its literals masked)."""
        weight = text_bytes(text) + self._weigh(value)
        if weight > self.max_item_bytes:
            return value
        with self._lock:
            kept = self._entries.get(text)
            if kept is not None:  # another thread stored it meanwhile: keep one copy
                return kept
            order = self._order
            entries = self._entries
            total = self._bytes + weight
            while order and (len(order) >= self.max_entries or total > self.max_bytes):
                old, old_weight = order.popleft()
                del entries[old]
                total -= old_weight
            entries[text] = value
            order.append((text, weight))
            self._bytes = total
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._order.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        """Bytes held by the stored keys and values, as weighed when each was stored."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: object) -> bool:
        return text in self._entries

    def weights(self) -> Iterator[tuple[str, int]]:
        """The stored texts, oldest first, each with the weight counted for it (a snapshot, for tests)."""
        with self._lock:
            return iter(list(self._order))
