"""One module per check; ``ALL`` is the order they run and print in."""

from pgpulse.doctor.check import Check
from pgpulse.doctor.checks.bloat import BloatCheck
from pgpulse.doctor.checks.blocked_queries import BlockedQueriesCheck
from pgpulse.doctor.checks.connection_churn import ConnectionChurnCheck
from pgpulse.doctor.checks.connections import ConnectionsCheck
from pgpulse.doctor.checks.duplicate_indexes import DuplicateIndexesCheck
from pgpulse.doctor.checks.foreign_key_indexes import ForeignKeyIndexesCheck
from pgpulse.doctor.checks.index_bloat import IndexBloatCheck
from pgpulse.doctor.checks.invalid_constraints import InvalidConstraintsCheck
from pgpulse.doctor.checks.invalid_indexes import InvalidIndexesCheck
from pgpulse.doctor.checks.long_queries import LongQueriesCheck
from pgpulse.doctor.checks.memory_settings import MemorySettingsCheck
from pgpulse.doctor.checks.missing_indexes import MissingIndexesCheck
from pgpulse.doctor.checks.primary_keys import PrimaryKeysCheck
from pgpulse.doctor.checks.replication import ReplicationCheck
from pgpulse.doctor.checks.sequences import SequencesCheck
from pgpulse.doctor.checks.settings import SettingsCheck
from pgpulse.doctor.checks.stale_statistics import StaleStatisticsCheck
from pgpulse.doctor.checks.top_queries import TopQueriesCheck
from pgpulse.doctor.checks.unused_indexes import UnusedIndexesCheck
from pgpulse.doctor.checks.vacuum import VacuumCheck
from pgpulse.doctor.checks.wraparound import WraparoundCheck

ALL: tuple[Check, ...] = (
    InvalidIndexesCheck(),
    InvalidConstraintsCheck(),
    MissingIndexesCheck(),
    ForeignKeyIndexesCheck(),
    UnusedIndexesCheck(),
    DuplicateIndexesCheck(),
    PrimaryKeysCheck(),
    SequencesCheck(),
    VacuumCheck(),
    BloatCheck(),
    IndexBloatCheck(),
    StaleStatisticsCheck(),
    WraparoundCheck(),
    TopQueriesCheck(),
    SettingsCheck(),
    MemorySettingsCheck(),
    ConnectionsCheck(),
    ConnectionChurnCheck(),
    LongQueriesCheck(),
    BlockedQueriesCheck(),
    ReplicationCheck(),
)

__all__ = ["ALL"]
