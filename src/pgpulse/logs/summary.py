"""Group timed statements by query shape (pglast fingerprint) and rank them, as pgBadger would, in bounded memory.

``parse``/``bind`` entries of the extended protocol are the planning and binding of the same statement the
``execute`` entry times; counting them would count one query three times, so they are left out of the
ranking (their time is small and already inside the client's round trip).

Memory does not grow with the log (see :class:`Limits`): each shape keeps count, total, min, max and a DDSketch
(relative error 1%, at most 512 bins) instead of every duration; the number of shapes held is capped, and when
the cap is reached the shapes with the least total time are folded into one "other shapes" bucket (their
executions stay in the totals; a shape folded early and seen again later starts afresh, so the kept shapes are
the heaviest *since the last fold*: exact while a log has fewer distinct shapes than the cap, which is the common
case). The slowest plan of a shape is kept redacted and cut at :attr:`Limits.max_plan_chars`; query texts and
plans together stay under :attr:`Limits.text_budget` characters. A statement over the parser's size cap is never
parsed: it is grouped by a hash of its first characters and shown as "oversized".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from ddsketch import LogCollapsingLowestDenseDDSketch

from pgpulse.logs.parse import LogEntry
from pgpulse.sql import UnsafeStatementError, one_statement
from pgpulse.sql.cache import BoundedTextCache, text_bytes
from pgpulse.sql.guard import DML_KINDS
from pgpulse.sql.redact import redact_plan, redact_sql
from pgpulse.sql.shape import MAX_ITEM_BYTES, fingerprint_uncached, normalize_uncached

COUNTED_KINDS = ("statement", "execute", "plan", "duration")
SKETCH_ACCURACY = 0.01  # p95 within 1% of a duration that occurred
SKETCH_BINS = 512  # covers a 28,000x spread of durations in one shape before the fastest bins are merged
# The reader's own fingerprint memo, one per aggregator, keyed by the text with its literals masked: a log holds
# one shape with endless values, so this hits where the profiler's memo (keyed by the exact text) would miss, and
# a log's texts do not push the profiler's shapes out of the shared memo. 4,096 texts of at most _CACHED_TEXT
# characters, and 8 MiB (a few non-ASCII texts weigh up to 8 bytes a character).
_FINGERPRINT_CACHE = 4096
_FINGERPRINT_CACHE_BYTES = 8 * 1024 * 1024
_CACHED_TEXT = 2048
_PENDING_PIDS = 4096  # auto_explain plans waiting for their statement's duration line


class SortKey(StrEnum):
    total = "total"
    mean = "mean"
    calls = "count"
    p95 = "p95"
    max = "max"


@dataclass(frozen=True)
class Limits:
    """The bounds that keep a summary's memory flat whatever the log's size."""

    max_shapes: int = 1000  # shapes kept; between folds up to 1.5 times as many are held
    max_plan_chars: int = 16 * 1024  # the slowest plan of a shape, cut here
    text_budget: int = 12 * 1024 * 1024  # characters of query text + plans held at once (folds when over)


def _new_sketch() -> LogCollapsingLowestDenseDDSketch:
    return LogCollapsingLowestDenseDDSketch(SKETCH_ACCURACY, bin_limit=SKETCH_BINS)


@dataclass
class QueryStats:
    fingerprint: str
    query: str  # normalized and redacted: constants replaced by $n, never a parameter value or a literal
    count: int = 0
    total: float = 0.0
    min: float = 0.0
    max: float = 0.0
    plan: str | None = None  # the slowest auto_explain plan seen for this query, redacted (and cut)
    plan_ms: float = 0.0
    oversized: bool = False  # over the parser's size cap: grouped by a hash of its start, never parsed
    sketch: LogCollapsingLowestDenseDDSketch = field(default_factory=_new_sketch, repr=False)

    def add(self, ms: float) -> None:
        if self.count == 0 or ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms
        self.count += 1
        self.total += ms
        self.sketch.add(ms)

    def merge(self, other: QueryStats) -> None:
        if other.count == 0:
            return
        if self.count == 0 or other.min < self.min:
            self.min = other.min
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total
        self.sketch.merge(other.sketch)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def p95(self) -> float:
        """From the sketch: within 1% of a duration that occurred, and never outside [min, max]."""
        value = self.sketch.get_quantile_value(0.95) if self.count else None
        return 0.0 if value is None else min(max(float(value), self.min), self.max)

    @property
    def text_size(self) -> int:
        return len(self.query) + len(self.plan or "")

    def as_dict(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "query": self.query,
            "count": self.count,
            "total_ms": round(self.total, 3),
            "mean_ms": round(self.mean, 3),
            "p95_ms": round(self.p95, 3),
            "min_ms": round(self.min, 3),
            "max_ms": round(self.max, 3),
            "oversized": self.oversized,
            "plan": self.plan,
        }


@dataclass
class Summary:
    """The kept shapes, and what the bounds left out of them (so the totals still add up)."""

    shapes: list[QueryStats]
    other: QueryStats  # executions of the shapes folded away by the cap
    other_shapes: int  # how many distinct shapes were folded (a shape folded twice counts twice)
    oversized: int  # executions of statements over the parser's size cap (counted, not parsed)
    executions: int  # executions counted, kept shapes and other together


class ShapeAggregator:
    """Feed entries one at a time (:meth:`add`), then :meth:`finish`. Memory is bounded by :class:`Limits`.

    A ``plan`` entry (auto_explain) counts as one execution and offers its plan. When the statement also
    exceeded ``log_min_duration_statement``, the same backend logs both its plan and its duration line: one
    execution. The simple protocol logs the plan first (at executor end, before the statement's line); the
    extended protocol logs the ``execute`` line first and the plan when the portal is dropped. So a plan and a
    statement of the same shape that follow each other on one pid, in either order, are counted once; a plan is
    counted on its own only when no such statement line comes.
    """

    def __init__(self, min_duration_ms: float = 0.0, limits: Limits | None = None) -> None:
        self.min_duration_ms = min_duration_ms
        self.limits = limits or Limits()
        self.groups: dict[str, QueryStats] = {}
        self.other = QueryStats(fingerprint="other", query="(other shapes)")
        self.other_shapes = 0
        self.oversized = 0
        self.text_size = 0
        # pid -> (shape key, duration, is a plan): the last entry of each backend, waiting for its other half
        self._pending: dict[int | None, tuple[str, float, bool]] = {}
        self._keys: BoundedTextCache[str] = BoundedTextCache(
            fingerprint_uncached,  # unused: a key is stored with the fingerprint of its unmasked text
            max_entries=_FINGERPRINT_CACHE,
            max_bytes=_FINGERPRINT_CACHE_BYTES,
            max_item_bytes=MAX_ITEM_BYTES,
            weigh=text_bytes,
        )

    def add(self, entry: LogEntry) -> None:
        if entry.kind not in COUNTED_KINDS:
            return
        key = self._key(entry)
        is_plan = entry.kind == "plan"
        waiting = self._pending.pop(entry.pid, None)
        if waiting is not None:
            waiting_key, waiting_ms, waiting_is_plan = waiting
            if waiting_key == key and waiting_is_plan != is_plan:  # the plan and the duration line of one execution
                if is_plan:
                    self._offer_plan(key, entry)  # its statement was counted when its line came
                else:
                    self._count(key, entry.duration_ms, entry)  # its plan was offered when it came
                self._fold_if_needed()
                return
            if waiting_is_plan:
                self._count(waiting_key, waiting_ms)  # a plan whose statement line never came (auto_explain alone)
        if is_plan:
            self._offer_plan(key, entry)
        else:
            self._count(key, entry.duration_ms, entry)
        self._pending[entry.pid] = (key, entry.duration_ms, is_plan)
        if len(self._pending) > _PENDING_PIDS:  # a log with endless pids: settle the oldest now
            oldest_key, oldest_ms, oldest_is_plan = self._pending.pop(next(iter(self._pending)))
            if oldest_is_plan:
                self._count(oldest_key, oldest_ms)
        self._fold_if_needed()

    def finish(self) -> Summary:
        for key, ms, is_plan in self._pending.values():
            if is_plan:
                self._count(key, ms)
        self._pending.clear()
        self._fold_if_needed(self.limits.max_shapes)
        shapes = [s for s in self.groups.values() if s.count]
        executions = sum(s.count for s in shapes) + self.other.count
        return Summary(shapes, self.other, self.other_shapes, self.oversized, executions)

    def _count(self, key: str, ms: float, entry: LogEntry | None = None) -> None:
        """One execution; ``entry`` creates its shape if needed (a plan counted late finds its shape, or the
        "other" bucket if the shape was folded away since)."""
        if ms < self.min_duration_ms:
            return
        stats = self._group(key, entry) if entry is not None else self.groups.get(key)
        (stats or self.other).add(ms)
        if entry is not None and entry.oversized:
            self.oversized += 1

    def _key(self, entry: LogEntry) -> str:
        if entry.oversized:
            folded = " ".join(entry.statement.split()).lower().encode("utf-8", "replace")
            return "o" + hashlib.blake2b(folded, digest_size=8).hexdigest()[1:]
        text = entry.statement or "(duration only: no statement text)"
        if len(text) > _CACHED_TEXT:
            return fingerprint_uncached(text)
        cache_key = literals_masked(text)
        key = self._keys.lookup(cache_key)
        if key is None:
            # Fingerprinted from the text itself, not the masked key: a text the parser rejects is grouped by a
            # hash of its own words, as it is when not cached.
            key = self._keys.store(cache_key, fingerprint_uncached(text))
        return key

    def _group(self, key: str, entry: LogEntry) -> QueryStats:
        stats = self.groups.get(key)
        if stats is None:
            stats = self.groups[key] = QueryStats(fingerprint=key, query=_shown_query(entry), oversized=entry.oversized)
            self.text_size += stats.text_size
        return stats

    def _offer_plan(self, key: str, entry: LogEntry) -> None:
        """Keep the plan if it is the slowest of its shape so far (redacted only then: most plans are not)."""
        if entry.plan is None or entry.duration_ms < self.min_duration_ms:
            return
        stats = self._group(key, entry)
        if stats.plan is not None and entry.duration_ms < stats.plan_ms:
            return
        plan = redact_plan(entry.plan[: self.limits.max_plan_chars * 4])
        if len(plan) > self.limits.max_plan_chars:
            plan = plan[: self.limits.max_plan_chars] + f"\n(plan cut at {self.limits.max_plan_chars // 1024} KiB)"
        self.text_size += len(plan) - len(stats.plan or "")
        stats.plan, stats.plan_ms = plan, entry.duration_ms

    def _fold_if_needed(self, most: int | None = None) -> None:
        """Fold the least costly shapes into "other" when over ``most`` shapes (1.5 times the cap while reading,
        so that folding, a sort, happens once per half a cap's worth of new shapes) or over the text budget.

        Worst case held: 1,500 shapes x (a full 512-bin sketch, about 20 KB) + 12 MiB of text, about 42 MB
        (measured: 1,500 shapes with full sketches peak at 121 MB RSS, 31 MB over the CLI's own 90 MB)."""
        most = self.limits.max_shapes * 3 // 2 if most is None else most
        if len(self.groups) <= most and self.text_size <= self.limits.text_budget:
            return
        ranked = sorted(self.groups.values(), key=lambda s: (s.total, s.count), reverse=True)
        keep: dict[str, QueryStats] = {}
        size = 0
        for stats in ranked:
            if len(keep) < self.limits.max_shapes and size + stats.text_size <= self.limits.text_budget // 2:
                keep[stats.fingerprint] = stats
                size += stats.text_size
            else:
                self.other.merge(stats)
                self.other_shapes += 1
        self.groups, self.text_size = keep, size


_UNSURE = re.compile(r'["\\]|--|/\*|\$(?!\d)')
_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w$.])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")


def literals_masked(text: str) -> str:
    """A cache key for the fingerprint: ``text`` with its string and number constants masked, so the same shape
    with other values (the common case in a log) costs one regular expression instead of a parse.

    The fingerprint ignores every constant, so two texts that differ only there share it. The masking is exact
    only where a regular expression can find every constant: no double quote (a quoted identifier may hold
    digits), backslash (escape strings), dollar quote or comment (may hold a quote). Other texts are their own
    key."""
    if _UNSURE.search(text):
        return text
    return _LITERAL.sub(lambda m: "'?'" if m.group(0).startswith("'") else "0", text)


def _shown_query(entry: LogEntry) -> str:
    """What a shape is shown as: normalized by PostgreSQL's parser (constants become $n), then redacted again,
    because normalize leaves the literals of utility statements (``CREATE SERVER … OPTIONS (password '…')``,
    ``COPY … PROGRAM '…'``) and comments in place, and returns text it cannot parse as it is."""
    if entry.oversized:
        return f"{redact_sql(entry.statement[:200])} … (oversized statement: counted, not parsed)"
    if not entry.statement:
        return "(duration only: no statement text)"
    normalized = normalize_uncached(entry.statement)
    try:
        one_statement(entry.statement, DML_KINDS)
    except UnsafeStatementError:  # a utility statement, several, or no parse: normalize may have left values
        return redact_sql(normalized)
    # One DML statement: normalize replaced every value by $n; the numbers left are type modifiers and column
    # positions, kept so that `advise --log` gets SQL it can EXPLAIN. Strings and comments still go.
    return redact_sql(normalized, keep_numbers=True)


def aggregate(entries: Iterable[LogEntry], min_duration_ms: float = 0.0, limits: Limits | None = None) -> Summary:
    """The whole :class:`Summary` of a stream of entries, in bounded memory."""
    aggregator = ShapeAggregator(min_duration_ms, limits)
    for entry in entries:
        aggregator.add(entry)
    return aggregator.finish()


def summarize(entries: Iterable[LogEntry], min_duration_ms: float = 0.0) -> list[QueryStats]:
    """One QueryStats per query shape (at most :attr:`Limits.max_shapes`; see :func:`aggregate` for the rest)."""
    return aggregate(entries, min_duration_ms).shapes


def rank(stats: list[QueryStats], by: SortKey, top: int | None) -> list[QueryStats]:
    ordered = sorted(stats, key=lambda s: (getattr(s, by.value), s.count), reverse=True)
    return ordered[:top] if top else ordered
