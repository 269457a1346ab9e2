"""History: snapshots of the statistics views kept in a store, and the regressions between two points in time.

``read_snapshot`` reads a target read-only, ``open_store(...).record`` turns counters into reset-proof deltas,
``apply_retention`` downsamples, ``diff`` compares a baseline window with the current one.
"""

from pgpulse.history.diff import DiffReport, Finding, FindingKind, Thresholds, Windows, diff
from pgpulse.history.retention import DEFAULT_POLICY, Policy, apply_retention
from pgpulse.history.snapshot import Snapshot, SnapshotError, read_snapshot
from pgpulse.history.store import Store, StoreError, migrate, open_store

__all__ = [
    "DEFAULT_POLICY",
    "DiffReport",
    "Finding",
    "FindingKind",
    "Policy",
    "Snapshot",
    "SnapshotError",
    "Store",
    "StoreError",
    "Thresholds",
    "Windows",
    "apply_retention",
    "diff",
    "migrate",
    "open_store",
    "read_snapshot",
]
