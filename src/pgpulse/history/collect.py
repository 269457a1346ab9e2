"""One round of collection: read a snapshot of a target and record it in the store, then apply retention.

``pgpulse history snapshot`` runs it once, ``pgpulse history collect`` on a schedule for each target.
"""

from __future__ import annotations

from pgpulse.db.targets import Target
from pgpulse.history.retention import Policy, apply_retention
from pgpulse.history.snapshot import read_snapshot
from pgpulse.history.store import Recorded, open_store


async def snapshot_once(target: Target, store_url: str, policy: Policy | None = None) -> Recorded:
    """Read one snapshot of ``target`` and record it (migrating a new store first); optionally apply retention."""
    snap = await read_snapshot(target.url)
    store = await open_store(store_url)
    try:
        recorded = await store.record(target.name, snap)
        if policy is not None:
            target_id = await store.target_id(target.name)
            assert target_id is not None
            await apply_retention(store.conn, target_id, policy)
    finally:
        await store.close()
    return recorded
