"""Replication: slots nobody consumes and the WAL they hold back, and replicas' replay lag where visible.

A replication slot keeps every WAL segment its consumer has not confirmed. An abandoned slot (a replica or
a CDC pipeline that went away) keeps all WAL from then on: ``pg_wal`` grows until the disk is full and the
primary stops; a logical slot also holds back the catalog xmin, so vacuum cannot clean the catalogs.

Thresholds: an inactive slot that retains WAL is a warning (PgHero lists every inactive slot), critical
when it retains at least ``max_wal_size`` or PostgreSQL already marks its WAL ``unreserved``/``lost``; an
inactive slot that never reserved WAL (``restart_lsn`` is NULL) holds nothing yet and is info. Replay lag
of a standby (``pg_stat_replication.replay_lag`` on the primary, ``now() - pg_last_xact_replay_timestamp()``
on a replica with WAL still to replay) is a warning from ``LAG_WARN_SECONDS`` (5 s, PgHero's bound).
Slots are server-wide: on a fleet of databases on one server, each database's report repeats them.
"""

from __future__ import annotations

import asyncpg

from pgpulse.doctor.check import Context, Finding, Severity, pretty_bytes

LAG_WARN_SECONDS = 5.0

SLOTS = """
SELECT slot_name, slot_type, database, active, wal_status,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
                       restart_lsn)::bigint AS retained_bytes,
       pg_size_bytes(current_setting('max_wal_size')) AS max_wal_size
FROM pg_replication_slots
WHERE NOT active
ORDER BY retained_bytes DESC NULLS LAST, slot_name
"""
STANDBYS = """
SELECT application_name, client_addr::text AS client_addr, state,
       EXTRACT(EPOCH FROM replay_lag)::float AS replay_lag_seconds,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes
FROM pg_stat_replication
WHERE replay_lag > make_interval(secs => $1)
"""
REPLICA_LAG = """
SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float END AS lag_seconds
"""


class ReplicationCheck:
    name = "replication"
    title = "Replication slots and lag"

    async def run(self, ctx: Context) -> list[Finding]:
        findings = [self._slot(row) for row in await ctx.conn.fetch(SLOTS)]
        if await ctx.conn.fetchval("SELECT pg_is_in_recovery()"):
            lag = await ctx.conn.fetchval(REPLICA_LAG)
            if lag is not None and lag >= LAG_WARN_SECONDS:
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.warning,
                        object="server (replica)",
                        title=f"this replica is {lag:,.0f} s behind its primary",
                        evidence={"lag_seconds": round(lag, 1)},
                        note="Long queries on the replica (hot_standby_feedback, max_standby_streaming_delay), "
                        "I/O or the network hold replay back.",
                    )
                )
        else:
            for row in await ctx.conn.fetch(STANDBYS, LAG_WARN_SECONDS):
                findings.append(
                    Finding(
                        check=self.name,
                        severity=Severity.warning,
                        object=f"standby {row['application_name'] or row['client_addr']}",
                        title=f"standby {row['application_name'] or row['client_addr']} replays "
                        f"{row['replay_lag_seconds']:,.1f} s behind ({pretty_bytes(row['replay_lag_bytes'])})",
                        evidence=dict(row),
                    )
                )
        return findings

    def _slot(self, r: asyncpg.Record) -> Finding:
        retained = r["retained_bytes"]
        kind = f"{r['slot_type']} slot {r['slot_name']}" + (f" (database {r['database']})" if r["database"] else "")
        if retained is None:
            severity = Severity.info
            title = f"inactive {kind} has not reserved WAL yet"
        else:
            lost = r["wal_status"] in ("unreserved", "lost")
            severity = Severity.critical if lost or retained >= r["max_wal_size"] else Severity.warning
            title = f"inactive {kind} retains {pretty_bytes(retained)} of WAL"
        return Finding(
            check=self.name,
            severity=severity,
            object=f"slot {r['slot_name']}",
            title=title,
            evidence={
                "slot_type": r["slot_type"],
                "retained_bytes": retained,
                "wal_status": r["wal_status"],
                "max_wal_size_bytes": r["max_wal_size"],
            },
            # slot names are restricted to [a-z0-9_] by PostgreSQL, so the printed literal needs no escaping
            fix=f"SELECT pg_drop_replication_slot('{r['slot_name']}');  -- if its consumer is gone for good",
            note="Set max_slot_wal_keep_size so a forgotten slot cannot fill the disk.",
        )
