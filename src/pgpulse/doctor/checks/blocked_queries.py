"""Blocked queries and lock chains: who waits, for how long, on which lock and object, and who blocks them.

One session holding a lock (often idle in a transaction, or a migration's ALTER TABLE queued behind a long
read) can stall every request that touches the table. ``pg_blocking_pids()`` gives the exact wait graph
(PgHero joins pg_locks by hand); we walk it to the **root** of each chain — a blocker that waits on
nobody — because terminating or fixing the root releases everything behind it. Roots come first, each with
its state, how long its transaction has been open and its query's shape (literals replaced, never the
parameters), followed by the sessions waiting behind it.

Threshold: a chain is reported when one of its sessions has waited for a lock at least
``min_wait_seconds`` (5 s; ``pg_locks.waitstart``): brief lock waits are normal under concurrency. Waiting
``CRITICAL_SECONDS`` (60 s) or more is critical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pgpulse.doctor.check import Context, Finding, Severity
from pgpulse.doctor.checks.connections import query_shape

MIN_WAIT_SECONDS = 5.0
CRITICAL_SECONDS = 60.0

# Every session of this database that waits on a lock, with the lock it waits for and who blocks it.
WAITERS = """
SELECT a.pid, a.usename, a.application_name, a.state, a.query, pg_blocking_pids(a.pid) AS blocked_by,
       l.locktype, l.mode,
       CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text
            WHEN l.locktype = 'transactionid' THEN 'transaction ' || l.transactionid::text
            WHEN l.locktype = 'virtualxid' THEN 'virtual transaction ' || l.virtualxid
            ELSE l.locktype END AS locked_object,
       EXTRACT(EPOCH FROM clock_timestamp() - l.waitstart)::float AS wait_seconds
FROM pg_stat_activity a
JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE a.datname = current_database() AND cardinality(pg_blocking_pids(a.pid)) > 0
"""
SESSIONS = """
SELECT pid, usename, application_name, state, query, wait_event_type,
       EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float AS xact_seconds,
       EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float AS state_seconds
FROM pg_stat_activity WHERE pid = ANY($1::int[])
"""


def roots(blocked_by: dict[int, list[int]], start: int) -> set[int]:
    """The sessions at the end of every blocking path from ``start``: blockers that wait on nobody."""
    found, seen, stack = set(), {start}, [start]
    while stack:
        pid = stack.pop()
        upstream = [b for b in blocked_by.get(pid, []) if b not in seen]
        if not blocked_by.get(pid) and pid != start:
            found.add(pid)
        for b in upstream:
            seen.add(b)
            stack.append(b)
    return found or {start}  # a cycle (a deadlock about to be broken): report the waiter itself


@dataclass
class BlockedQueriesCheck:
    min_wait_seconds: float = MIN_WAIT_SECONDS
    name: ClassVar[str] = "blocked_queries"
    title: ClassVar[str] = "Blocked queries and lock chains"

    async def run(self, ctx: Context) -> list[Finding]:
        waiters = {row["pid"]: row for row in await ctx.conn.fetch(WAITERS)}
        if not waiters:
            return []
        blocked_by = {pid: list(row["blocked_by"]) for pid, row in waiters.items()}
        chains: dict[int, list[int]] = {}
        for pid in waiters:
            for root in roots(blocked_by, pid):
                chains.setdefault(root, []).append(pid)
        involved = set(chains) | {b for pids in blocked_by.values() for b in pids}
        sessions = {row["pid"]: row for row in await ctx.conn.fetch(SESSIONS, list(involved))}
        findings = []
        for root, victims in sorted(chains.items(), key=lambda kv: -self._longest(waiters, kv[1])):
            longest = self._longest(waiters, victims)
            if longest < self.min_wait_seconds:
                continue
            findings.append(self._finding(root, sorted(victims), waiters, sessions, blocked_by, longest))
        return findings

    @staticmethod
    def _longest(waiters: dict[int, Any], victims: list[int]) -> float:
        return max((waiters[v]["wait_seconds"] or 0.0) for v in victims)

    def _finding(
        self,
        root: int,
        victims: list[int],
        waiters: dict[int, Any],
        sessions: dict[int, Any],
        blocked_by: dict[int, list[int]],
        longest: float,
    ) -> Finding:
        blocker = sessions.get(root)
        state = blocker["state"] if blocker else "gone"
        chain = [
            {
                "pid": v,
                "waits_seconds": round(waiters[v]["wait_seconds"] or 0.0, 1),
                "lock": f"{waiters[v]['mode']} on {waiters[v]['locked_object']}",
                "blocked_by": blocked_by[v],
                "query": query_shape(waiters[v]["query"]),
            }
            for v in victims
        ]
        first = waiters[max(victims, key=lambda v: waiters[v]["wait_seconds"] or 0.0)]
        return Finding(
            check=self.name,
            severity=Severity.critical if longest >= CRITICAL_SECONDS else Severity.warning,
            object=f"backend {root}",
            title=f"session {root} ({state}) blocks {len(victims)} session(s); the longest has waited "
            f"{longest:,.0f} s for {first['mode']} on {first['locked_object']}",
            evidence={
                "root_pid": root,
                "root_state": state,
                "root_user": blocker["usename"] if blocker else None,
                "root_application": blocker["application_name"] if blocker else None,
                "root_transaction_seconds": round(blocker["xact_seconds"] or 0.0, 1) if blocker else None,
                "root_query": query_shape(blocker["query"]) if blocker else None,
                "waiting": chain,
            },
            fix=f"SELECT pg_cancel_backend({root});  -- the root blocker, after checking what it is\n"
            f"SELECT pg_terminate_backend({root});  -- if it is idle in a transaction (cancel does nothing then)",
            note="Run migrations with SET lock_timeout = '5s' so a DDL gives up instead of queueing every "
            "query behind it, and set idle_in_transaction_session_timeout.",
        )
