"""Storage: schema and migrations, connections, tenant binding, repositories, the writer."""

from frostgate.store.db import Database, open_database
from frostgate.store.migrate import is_migrated, upgrade
from frostgate.store.writer import GroupCommitWriter, PendingDecision, WriteResult

__all__ = [
    "Database",
    "GroupCommitWriter",
    "PendingDecision",
    "WriteResult",
    "is_migrated",
    "open_database",
    "upgrade",
]
