"""The advisor's verified index for a query (the query page) and for the top queries (the Indexes page).

The dashboard hands the work to :mod:`pgpulse.advisor` as ``pgpulse advise`` would run it, with two limits of
its own, because a page must stay read-only and answer in bounded time:

* **Read-only.** The advisor's session is the doctor's (``default_transaction_read_only = on``, lock and
  statement timeouts); candidates are costed with HypoPG, whose hypothetical indexes live in that session's
  memory only. Never ``--allow-build`` (a rolled-back build takes a SHARE lock and writes) and never
  ``--apply``. Without HypoPG the page shows the ``pgpulse advise`` command to run instead, and why.
* **Bounded.** Costing a query's candidates takes one EXPLAIN each (tens of ms to seconds on a big schema):
  each run has a time budget (the session's ``statement_timeout`` and an overall deadline), results are cached
  for a TTL in a bounded cache, and two requests for the same advice share one run. The query page computes on
  its own GET (a link), the Indexes page's "advised" section in the background (the page never waits; it says
  it is computing until the result is there).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from pgpulse.advisor.advise import Advice, Advisor, Options, Verdict, shape_of
from pgpulse.advisor.verify import Verifier, VerifyError
from pgpulse.advisor.workload import WorkloadError, from_pg_stat_statements
from pgpulse.doctor.runner import ConnectError, connect
from pgpulse.errors import one_line
from pgpulse.sql import redact_text, redact_url

TOP_QUERIES = 20  # the Indexes page advises on the top queries by total time, as `pgpulse advise` does
MAX_CACHED = 256  # queries whose advice is kept (an LRU): memory is bounded however many query pages are opened
HYPOPG_SQL = "SELECT true FROM pg_extension WHERE extname = 'hypopg'"


class AdviceStatus(StrEnum):
    IMPROVED = "improved"  # a verified index cuts the query's cost by the advisor's factor
    NO_INDEX = "no-index"  # the advisor looked and advises nothing (covered, no gain, skipped: the reason says)
    UNAVAILABLE = "unavailable"  # no HypoPG here: the command to run instead
    TIMED_OUT = "timed-out"  # over the time budget
    FAILED = "failed"  # the database could not be read


@dataclass(frozen=True, slots=True)
class AdvisedIndex:
    create_sql: str  # CREATE INDEX CONCURRENTLY …; as `pgpulse advise` prints it
    table: str
    size_bytes: int  # HypoPG's estimate
    queries: tuple[tuple[int | None, str, float | None, float | None], ...]  # queryid, shape, cost before, after


@dataclass(frozen=True, slots=True)
class QueryAdvice:
    status: AdviceStatus
    reason: str  # one line: why (the advisor's verdict, or what to install)
    command: str  # the `pgpulse advise` command that gives the same advice, with the full log (-v)
    cost_before: float | None = None
    cost_after: float | None = None
    index: AdvisedIndex | None = None
    at: float = 0.0  # time.time() when it was computed

    @property
    def factor(self) -> float | None:
        if self.cost_before is None or not self.cost_after:
            return None
        return self.cost_before / self.cost_after


@dataclass(frozen=True, slots=True)
class WorkloadAdvice:
    status: AdviceStatus
    reason: str
    command: str
    indexes: tuple[AdvisedIndex, ...] = ()
    queries: int = 0  # how many queries the advisor read
    at: float = 0.0


@dataclass
class _Entry:
    value: QueryAdvice | WorkloadAdvice
    expires: float


class AdviceSource:
    """Advice per queryid and for the workload, cached for ``ttl`` seconds, each run within ``budget`` seconds."""

    def __init__(self, database_url: str, ttl: float = 600.0, budget: float = 15.0) -> None:
        self.database_url = database_url
        self.ttl = ttl
        self.budget = budget
        self._cache: OrderedDict[int | None, _Entry] = OrderedDict()  # None: the workload's advice
        self._running: dict[int | None, asyncio.Task[QueryAdvice | WorkloadAdvice]] = {}

    async def close(self) -> None:
        """Stop the runs still going (the Indexes page's background one): their sessions close with them."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def command(self, queryid: int | None = None) -> str:
        which = f" --queryid {queryid}" if queryid is not None else f" --top {TOP_QUERIES}"
        return f"pgpulse advise {redact_url(self.database_url)}{which} -v"

    async def hypopg(self, conn: asyncpg.Connection) -> bool:
        """Is HypoPG enabled in the database (read on the dashboard's own session: one catalog lookup)?"""
        return bool(await conn.fetchval(HYPOPG_SQL))

    def unavailable(self, queryid: int | None = None) -> QueryAdvice:
        return QueryAdvice(
            AdviceStatus.UNAVAILABLE,
            "the advisor verifies each index with HypoPG's hypothetical indexes, and HypoPG is not enabled in "
            "this database: install it on the server (apt install postgresql-<version>-hypopg), run CREATE "
            "EXTENSION hypopg, or run the command below with --allow-build on a disposable copy",
            self.command(queryid),
        )

    def cached(self, key: int | None) -> QueryAdvice | WorkloadAdvice | None:
        entry = self._cache.get(key)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry.value

    async def for_query(self, queryid: int) -> QueryAdvice:
        """The advice for one pg_stat_statements query, computed now (within the budget) unless cached."""
        value = await self._get(queryid, lambda: self._query(queryid))
        assert isinstance(value, QueryAdvice)
        return value

    def workload(self) -> WorkloadAdvice | None:
        """The advice for the top queries if it is ready; otherwise start computing it in the background (once)
        and return None: the page says it is computing."""
        value = self.cached(None)
        if value is not None:
            assert isinstance(value, WorkloadAdvice)
            return value
        if None not in self._running:
            self._start(None, self._workload)
        return None

    async def _get(
        self, key: int | None, compute: Callable[[], Awaitable[QueryAdvice | WorkloadAdvice]]
    ) -> QueryAdvice | WorkloadAdvice:
        value = self.cached(key)
        if value is not None:
            return value
        task = self._running.get(key) or self._start(key, compute)
        return await asyncio.shield(task)  # a client that goes away does not cancel the run others wait on

    def _start(
        self, key: int | None, compute: Callable[[], Awaitable[QueryAdvice | WorkloadAdvice]]
    ) -> asyncio.Task[QueryAdvice | WorkloadAdvice]:
        async def run() -> QueryAdvice | WorkloadAdvice:
            try:
                value = await compute()
            finally:
                self._running.pop(key, None)
            self._cache[key] = _Entry(value, time.monotonic() + self.ttl)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
            return value

        task = asyncio.ensure_future(run())
        self._running[key] = task
        return task

    async def _advise(self, queryid: int | None) -> Advice | QueryAdvice:
        """Run the advisor within the budget; a QueryAdvice when it could not (no HypoPG, timeout, failure)."""
        command = self.command(queryid)
        deadline = time.monotonic() + self.budget
        try:
            async with asyncio.timeout(self.budget):
                conn, _ = await connect(self.database_url)
                try:
                    # The advisor's EXPLAINs are not the application's workload (where the role may say so).
                    with contextlib.suppress(asyncpg.PostgresError):
                        await conn.execute("SET pg_stat_statements.track = 'none'")
                    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                    await conn.execute("SELECT set_config('statement_timeout', $1, false)", f"{left_ms}ms")
                    if await conn.fetchval("SHOW default_transaction_read_only") != "on":
                        raise VerifyError("the session did not start read-only: refusing")
                    workload = await from_pg_stat_statements(conn, TOP_QUERIES, 1, queryid)
                    if not workload:
                        raise WorkloadError("pg_stat_statements has no such query for this database (reset since?)")
                    verifier = await Verifier.create(conn, allow_build=False)
                    return await Advisor(conn, verifier, Options(), lambda _: None).run(workload)
                finally:
                    await conn.close()
        except TimeoutError:
            return QueryAdvice(
                AdviceStatus.TIMED_OUT,
                f"the advisor did not finish within the page's {self.budget:g} s budget: run the command below",
                command,
                at=time.time(),
            )
        except VerifyError as exc:
            if "HypoPG" in str(exc) or "hypopg" in str(exc):
                return self.unavailable(queryid)
            return QueryAdvice(AdviceStatus.FAILED, redact_text(one_line(exc)), command, at=time.time())
        except WorkloadError as exc:
            return QueryAdvice(AdviceStatus.NO_INDEX, redact_text(one_line(exc)), command, at=time.time())
        except (ConnectError, asyncpg.PostgresError, OSError) as exc:
            return QueryAdvice(
                AdviceStatus.FAILED, redact_text(f"{type(exc).__name__}: {one_line(exc)}"), command, at=time.time()
            )
        except Exception as exc:  # a bug of ours: one line on the page, never a dead background task
            reason = f"the advisor stopped on an unexpected {type(exc).__name__}: {one_line(exc)}; please report it"
            return QueryAdvice(AdviceStatus.FAILED, redact_text(reason), command, at=time.time())

    async def _query(self, queryid: int) -> QueryAdvice:
        advice = await self._advise(queryid)
        if isinstance(advice, QueryAdvice):
            return advice
        command = self.command(queryid)
        verdict = next((v for v in advice.verdicts if v.query.queryid == queryid), None)
        if verdict is None:
            return QueryAdvice(AdviceStatus.NO_INDEX, "the advisor does not advise on this kind of statement", command)
        indexes = _indexes(advice)
        index = next((i for i, r in zip(indexes, advice.recommendations, strict=True) if verdict in r.verdicts), None)
        if verdict.status != "improved" or index is None:
            return QueryAdvice(
                AdviceStatus.NO_INDEX, verdict.reason, command, verdict.cost_before, None, None, time.time()
            )
        return QueryAdvice(
            AdviceStatus.IMPROVED, verdict.reason, command, verdict.cost_before, verdict.cost_after, index, time.time()
        )

    async def _workload(self) -> WorkloadAdvice:
        advice = await self._advise(None)
        command = self.command()
        if isinstance(advice, QueryAdvice):
            return WorkloadAdvice(advice.status, advice.reason, command, at=time.time())
        indexes = tuple(_indexes(advice))
        status = AdviceStatus.IMPROVED if indexes else AdviceStatus.NO_INDEX
        reason = (
            f"{len(indexes)} index{'es' if len(indexes) != 1 else ''} chosen for the top queries together"
            if indexes
            else "no index cuts the top queries' cost enough to be worth its writes"
        )
        return WorkloadAdvice(status, reason, command, indexes, len(advice.verdicts), time.time())


def _indexes(advice: Advice) -> list[AdvisedIndex]:
    return [
        AdvisedIndex(
            r.create_sql,
            r.candidate.table.qualified,
            r.size_bytes,
            tuple(_served(v) for v in r.verdicts),
        )
        for r in advice.recommendations
    ]


def _served(verdict: Verdict) -> tuple[int | None, str, float | None, float | None]:
    return verdict.query.queryid, shape_of(verdict.query.sql), verdict.cost_before, verdict.cost_after
